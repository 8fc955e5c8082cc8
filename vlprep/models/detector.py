"""torchvision Faster R-CNN detectors: architectures, state-dict loading, label maps.

A detector checkpoint is a torchvision Faster R-CNN state dict (``.pth``/``.pt`` read with
``weights_only=True``, or ``.safetensors``), e.g. VinVL-style weights trained on the 1,594
Visual Genome classes and saved from a torchvision model. The architecture is named in the
stage options (the state dict does not say it); the number of classes is read from the
classifier's shape, and every key must load (BatchNorm's ``num_batches_tracked`` aside: the
published weights use frozen BN and lack it). ``random_detector`` gives seeded random weights
for demos and tests; ``resnet18_fpn`` is a small architecture that keeps a CPU demo fast.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torchvision.models import resnet18
from torchvision.models.detection import (
    FasterRCNN,
    fasterrcnn_mobilenet_v3_large_fpn,
    fasterrcnn_resnet50_fpn,
    fasterrcnn_resnet50_fpn_v2,
)
from torchvision.models.detection.backbone_utils import _resnet_fpn_extractor

from vlprep.errors import CheckpointError  # noqa: F401 - re-exported
from vlprep.models import checkpoint

log = logging.getLogger("vlprep")

Architecture = Literal["resnet50_fpn", "resnet50_fpn_v2", "mobilenet_v3_large_fpn",
                       "resnet18_fpn"]
VG_CLASSES = 1594  # VinVL's Visual Genome object classes (plus background: 1,595 outputs)
CLASSIFIER_KEY = "roi_heads.box_predictor.cls_score.weight"


def _resnet18_fpn(num_classes: int, **kwargs) -> FasterRCNN:
    return FasterRCNN(_resnet_fpn_extractor(resnet18(), 5), num_classes=num_classes, **kwargs)


_BUILDERS: dict[str, Callable[..., FasterRCNN]] = {
    "resnet50_fpn": fasterrcnn_resnet50_fpn,
    "resnet50_fpn_v2": fasterrcnn_resnet50_fpn_v2,
    "mobilenet_v3_large_fpn": fasterrcnn_mobilenet_v3_large_fpn,
}


def build_detector(architecture: Architecture, num_classes: int, min_size: int = 600,
                   max_size: int = 1000, proposals: int = 300) -> FasterRCNN:
    """An untrained Faster R-CNN (no weights are downloaded), eval mode.

    ``min_size``/``max_size`` are the test-time resize (VinVL: 600/1000); ``proposals`` the
    RPN boxes kept per image after NMS (VinVL: 300).
    """
    kwargs = dict(min_size=min_size, max_size=max_size, rpn_post_nms_top_n_test=proposals)
    if architecture == "resnet18_fpn":
        model = _resnet18_fpn(num_classes, **kwargs)
    elif architecture in _BUILDERS:
        model = _BUILDERS[architecture](weights=None, weights_backbone=None,
                                        num_classes=num_classes, **kwargs)
    else:
        raise ValueError(f"unknown detector architecture {architecture!r} "
                         f"(known: {', '.join([*_BUILDERS, 'resnet18_fpn'])})")
    return model.eval()


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """A torchvision Faster R-CNN state dict (models.checkpoint reads the file)."""
    state = checkpoint.read_state_dict(path)
    if CLASSIFIER_KEY not in state:
        raise CheckpointError(f"{path}: not a torchvision Faster R-CNN state dict "
                              f"(no {CLASSIFIER_KEY})")
    return state


def load_detector(path: str | Path, architecture: Architecture, min_size: int = 600,
                  max_size: int = 1000, proposals: int = 300) -> FasterRCNN:
    """A Faster R-CNN of `architecture` with the weights of the state dict at `path`."""
    state = read_state_dict(path)
    num_classes = int(state[CLASSIFIER_KEY].shape[0])
    model = build_detector(architecture, num_classes, min_size, max_size, proposals)
    return checkpoint.load_into(model, state, str(path), f"a {architecture} Faster R-CNN")


def random_detector(seed: int, architecture: Architecture, num_classes: int,
                    min_size: int = 600, max_size: int = 1000, proposals: int = 300
                    ) -> FasterRCNN:
    """Seeded random weights (deterministic across processes), for demos and tests only."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_detector(architecture, num_classes, min_size, max_size, proposals)
    log.warning("the detector is RANDOMLY INITIALISED (seed %d): its boxes, classes and region "
                "features are NOT meaningful; set a checkpoint for real ones", seed)
    return model.float().eval()


def coco_names() -> list[str]:
    """torchvision's COCO label map (91 entries, background and 'N/A' gaps included)."""
    from torchvision.models._meta import _COCO_CATEGORIES

    return list(_COCO_CATEGORIES)


def unique_name(name: str, class_id: int, taken: set[str]) -> str:
    """`name`, or ``<name>_<id>`` when another class already has it: readers (STOA-VLP,
    scene_graph_benchmark) map names back to ids, so a repeated name would merge classes."""
    if name not in taken:
        return name
    out = f"{name}_{class_id}"
    while out in taken:
        out += "_"
    return out


def unique_names(names: list[str]) -> list[str]:
    """Class names by id with repeats renamed (COCO's 'N/A' gaps: 'N/A', 'N/A_26', ...)."""
    taken: set[str] = set()
    out = []
    for i, name in enumerate(names):
        out.append(unique_name(name, i, taken))
        taken.add(out[-1])
    return out


def read_label_map(spec: str) -> list[str]:
    """Class names by class id (id 0 = background), from ``coco``, a JSON file (VinVL's
    ``VG-SGG-dicts*.json`` with ``idx_to_label``, or a list) or a text file (one name a line).
    A file without the background entry gets ``__background__`` prepended. Names are unique
    (see :func:`unique_names`)."""
    return unique_names(_read_label_map(spec))


def _read_label_map(spec: str) -> list[str]:
    if spec == "coco":
        return coco_names()
    path = Path(spec)
    if not path.is_file():
        raise ValueError(f"label map {spec!r}: no such file (or use 'coco')")
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "idx_to_label" in data:
            by_id = {int(k): str(v) for k, v in data["idx_to_label"].items()}
            if not by_id or set(by_id) != set(range(min(by_id), max(by_id) + 1)):
                raise ValueError(f"label map {spec!r}: idx_to_label ids are not contiguous")
            names = [by_id[i] for i in sorted(by_id)]
            return names if min(by_id) == 0 else ["__background__", *names]
        if not isinstance(data, list):
            raise ValueError(f"label map {spec!r}: expected idx_to_label or a list of names")
        names = [str(n) for n in data]
    else:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if not names:
        raise ValueError(f"label map {spec!r} is empty")
    return names if names[0] == "__background__" else ["__background__", *names]


def label_names(spec: str | None, num_classes: int) -> list[str]:
    """The label map for a model with `num_classes` outputs; ``class_<id>`` names without one."""
    if spec is None:
        return ["__background__", *(f"class_{i}" for i in range(1, num_classes))]
    names = read_label_map(spec)
    if len(names) != num_classes:
        raise ValueError(f"label map {spec!r} has {len(names)} entries (background included) "
                         f"but the detector has {num_classes} classes")
    return names


def region_feature_dim(model: FasterRCNN, region_feature: str) -> int:
    """Size of the region feature: the box head's representation, or the pooled channels."""
    if region_feature == "roi":
        return int(model.backbone.out_channels)
    predictor: nn.Module = model.roi_heads.box_predictor
    return int(predictor.cls_score.in_features)
