"""The VinVL detector end to end on a tiny configuration of its architecture: the API's
outputs, determinism, batching that changes nothing, the box frame, reduced precision."""

from __future__ import annotations

import numpy as np
import pytest
from vinvl_tiny import TINY, images

from vlprep.models.vinvl import VinVL
from vlprep.models.vinvl_checkpoint import random_state, save_published
from vlprep.models.vinvl_ops import resize_image


@pytest.fixture(scope="module")
def tiny_path(tmp_path_factory: pytest.TempPathFactory):
    return save_published(random_state(TINY, seed=3), tmp_path_factory.mktemp("vinvl") / "t.pth")


@pytest.fixture(scope="module")
def det(tiny_path) -> VinVL:
    det = VinVL.from_checkpoint(tiny_path, config=TINY)
    det.eval()
    return det


def test_detect_outputs(det: VinVL):
    ims = images()
    out = det.detect(ims)
    assert len(out) == len(ims)
    for image, o in zip(ims, out, strict=True):
        n = len(o["scores"])
        assert TINY.min_detections <= n <= TINY.max_detections
        assert o["boxes"].shape == (n, 4) and o["boxes"].dtype == np.float32
        assert o["features"].shape == (n, TINY.feature_dim) and o["features"].dtype == np.float32
        assert o["labels"].dtype == np.int64 and ((o["labels"] >= 1)
                                                  & (o["labels"] < TINY.num_classes)).all()
        assert o["attr_labels"].shape == o["attr_scores"].shape == (n, 16)
        assert ((o["attr_scores"] == 0) == (o["attr_labels"] == 0)).all()
        assert (np.diff(o["attr_scores"], axis=1) <= 0).all()
        assert ((o["attr_scores"] == 0) | (o["attr_scores"] > TINY.attr_thresh)).all()
        h, w = image.shape[:2]
        assert (o["boxes"] >= 0).all() and (o["boxes"][:, 0::2] <= w).all()
        assert (o["boxes"][:, 1::2] <= h).all()
        assert (o["scores"] > 0).all()


def test_deterministic_and_batching_changes_nothing(det: VinVL, tiny_path):
    ims = images(1)
    first = det.detect(ims)
    again = VinVL.from_checkpoint(tiny_path, config=TINY).detect(ims)
    same_size = [ims[0], ims[0].copy()[:, ::-1].copy(), ims[0]]
    batched = det.detect(same_size, batch_size=3)
    alone = [det.detect([im])[0] for im in same_size]
    for a, b in [*zip(first, again, strict=True), *zip(batched, alone, strict=True)]:
        assert a.keys() == b.keys()
        np.testing.assert_array_equal(a["labels"], b["labels"])
        np.testing.assert_allclose(a["boxes"], b["boxes"], rtol=1e-5, atol=1e-3)
        np.testing.assert_allclose(a["features"], b["features"], rtol=1e-4, atol=1e-4)
        np.testing.assert_array_equal(a["attr_labels"], b["attr_labels"])
    np.testing.assert_array_equal(batched[0]["labels"], batched[2]["labels"])


def test_boxes_are_in_input_pixels(det: VinVL):
    image = images(2)[0]  # 120 x 200 -> resized 96 x 160
    resized = resize_image(image, TINY)
    assert resized.shape[:2] == (96, 160)
    raw = det.detect_resized(resized[None], [(160, 96)])[0]
    out = det.detect([image])[0]
    np.testing.assert_allclose(out["boxes"], raw["boxes"] * 1.25, rtol=1e-5)
    np.testing.assert_array_equal(out["labels"], raw["labels"])


def test_reduced_precision_path_keeps_fp32_postprocessing(det: VinVL):
    ims = images(3)[:1]
    det.timings = {}
    try:
        out = det.detect(ims, precision="bf16")[0]  # CPU autocast: the GPU code path
        assert set(det.timings) == {"backbone", "rpn", "box_head", "postprocess"}
    finally:
        det.timings = None
    assert out["features"].dtype == np.float32 and out["attr_scores"].dtype == np.float32
    assert np.isfinite(out["features"]).all() and len(out["scores"]) >= TINY.min_detections


def test_bad_images_are_refused(det: VinVL):
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        det.detect([np.zeros((10, 10), np.uint8)])
    with pytest.raises(ValueError, match="uint8 H x W x 3"):
        det.detect([np.zeros((10, 10, 3), np.float32)])


def test_eval_returns_the_detector(det: VinVL):
    assert det.eval() is det and not det.training
    assert det.net.attribute.feature_extractor is det.net.roi_heads.box.feature_extractor
