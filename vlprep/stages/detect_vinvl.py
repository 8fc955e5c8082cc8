"""The detect stage's ``architecture: vinvl_x152c4`` backend: VinVL's published X152-C4.

Loads ``vinvl_vg_x152c4.pth`` once per worker (strictly, :mod:`vlprep.models.vinvl`; with
``runtime: onnx`` exported once to ONNX and run by onnxruntime) and runs it on sampled
frames with VinVL's feature-extraction settings. The stage options that name a VinVL
setting override it only when the job sets them, so the recipe's defaults are VinVL's own
(e.g. the per-class NMS at 0.3, not the torchvision path's 0.5).
"""

from __future__ import annotations

import dataclasses
import tempfile
from typing import Any

import numpy as np
import torch

from vlprep.models.region_detector import Detections
from vlprep.models.vinvl import VinVL
from vlprep.models.vinvl_labels import vinvl_names
from vlprep.models.vinvl_net import X152C4, VinVLConfig

# stage option -> VinVLConfig field, applied when the job sets the option
OVERRIDES = {"min_size": "min_size", "max_size": "max_size", "proposals": "post_nms_top_n",
             "score_thresh": "score_thresh", "nms_thresh": "class_nms",
             "min_detections": "min_detections", "max_detections": "max_detections",
             "nms_convention": "nms"}


BASE = X152C4  # the architecture the stage builds (tests swap in a tiny one)


def vinvl_config(opts: Any, base: VinVLConfig | None = None) -> VinVLConfig:
    """VinVL's configuration with the job's explicit overrides."""
    base = base or BASE
    changes = {field: getattr(opts, option) for option, field in OVERRIDES.items()
               if option in opts.model_fields_set}
    return dataclasses.replace(base, **changes)


class VinvlBackend:
    """Frames -> :class:`Detections` with attributes, in the frames' pixels."""

    def __init__(self, opts: Any, device: torch.device, base: VinVLConfig | None = None):
        config = vinvl_config(opts, base)
        if opts.init == "random":
            self.model = VinVL.random(config, opts.seed)
        else:
            self.model = VinVL.from_checkpoint(opts.checkpoint_path, config)  # sha256: job checks
        if opts.runtime == "onnx":  # export once per worker, run the graphs in onnxruntime
            from vlprep.models.vinvl_onnx import VinVLOnnx, export_vinvl_onnx

            self.folder = tempfile.TemporaryDirectory(prefix="vlprep-vinvl-onnx-")
            export_vinvl_onnx(self.model, self.folder.name)
            self.model = VinVLOnnx(self.folder.name, device)
        self.model = self.model.to(device).eval()
        self.model.precision = opts.precision
        self.batch = opts.frame_batch
        self.names, self.attributes = vinvl_names(opts.label_map, config.num_classes,
                                                  config.num_attributes)
        self.feature_dim = config.feature_dim

    def __call__(self, frames: np.ndarray) -> list[Detections]:
        height, width = frames.shape[1:3]
        out = self.model.detect(list(frames), batch_size=self.batch)
        return [detections(o, int(width), int(height)) for o in out]


def detections(out: dict[str, np.ndarray], width: int, height: int) -> Detections:
    """One image's VinVL output as the stage's Detections; attributes without the
    zero-score padding (a list per box, by descending score)."""
    keep = out["attr_scores"] > 0
    return Detections(out["boxes"], out["labels"], out["scores"], out["features"], width,
                      height, attr_ids=[a[k] for a, k in zip(out["attr_labels"], keep,
                                                             strict=True)],
                      attr_scores=[s[k] for s, k in zip(out["attr_scores"], keep,
                                                        strict=True)])
