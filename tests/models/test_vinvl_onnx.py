"""VinVL's networks exported to ONNX (dynamic image and box counts) agree with torch."""

from __future__ import annotations

import numpy as np
import pytest
from vinvl_tiny import TINY, images

from vlprep.models.onnx_runtime import onnxruntime_available
from vlprep.models.vinvl import VinVL

pytestmark = pytest.mark.skipif(not onnxruntime_available(), reason="needs onnxruntime")


def test_onnx_graphs_agree_with_torch_on_several_sizes(tmp_path):
    from vlprep.models.vinvl_onnx import VinVLOnnx, export_vinvl_onnx

    det = VinVL.random(TINY, seed=3)
    export_vinvl_onnx(det, tmp_path)
    onnx = VinVLOnnx(tmp_path)
    assert onnx.config == TINY
    ims = images(0)  # three sizes through the same graphs
    for a, b in zip(det.detect(ims), onnx.detect(ims), strict=True):
        np.testing.assert_array_equal(a["labels"], b["labels"])
        np.testing.assert_array_equal(a["attr_labels"], b["attr_labels"])
        np.testing.assert_allclose(a["boxes"], b["boxes"], atol=1e-2)
        np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-5)
        np.testing.assert_allclose(a["features"], b["features"], atol=1e-3)
        np.testing.assert_allclose(a["attr_scores"], b["attr_scores"], atol=1e-5)
