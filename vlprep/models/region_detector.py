"""VinVL-style detection with region features on a torchvision Faster R-CNN (the small/demo
detectors; the published VinVL X152-C4 itself is `vlprep.models.vinvl`).

The model's own pieces run in order (resize/normalise, backbone, RPN, RoI box head); the
post-processing is VinVL's test-time filter instead of torchvision's: per-class NMS, then one
label per proposal (its best surviving class, so every region has one feature), then score
threshold 0.2 with at least 10 and at most 100 boxes per image. Each kept box gets a region
feature pooled with RoIAlign from the backbone (FPN) maps at the final box: the box head's
representation (``head``, like VinVL's box features) or the mean of the pooled map (``roi``).

Everything is batched and written without per-image Python branching on data, so the same
module exports to ONNX (:func:`export_detector_onnx`) and runs in onnxruntime. Outputs are flat
over the batch with an ``image_index`` per box, sorted by image then score.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import FasterRCNN
from torchvision.ops import MultiScaleRoIAlign, batched_nms, poolers, roi_align

from vlprep.models.accel import Precision, autocast, to_device


@dataclass(frozen=True)
class VinvlSettings:
    score_thresh: float = 0.2
    nms_thresh: float = 0.5
    min_detections: int = 10
    max_detections: int = 100
    class_candidates: int = 10  # classes per proposal that enter the per-class NMS
    region_feature: str = "head"  # "head" | "roi"


class RegionDetector(nn.Module):
    """uint8 B x H x W x 3 RGB frames -> boxes (N x 4, frame pixels, x1 y1 x2 y2), labels (N),
    scores (N), region features (N x D), image_index (N)."""

    def __init__(self, model: FasterRCNN, settings: VinvlSettings = VinvlSettings()):
        super().__init__()
        self.model = model
        self.settings = settings

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, ...]:
        m, s = self.model, self.settings
        images = frames.permute(0, 3, 1, 2).float() / 255.0
        batch, height, width = images.shape[0], images.shape[2], images.shape[3]
        image_list, _ = m.transform(list(images.unbind(0)))
        features = m.backbone(image_list.tensors)
        proposals, _ = m.rpn(image_list, features)
        pooled = pool_regions(m.roi_heads.box_roi_pool, features, proposals,
                              image_list.image_sizes)
        logits, deltas = m.roi_heads.box_predictor(m.roi_heads.box_head(pooled))
        # every image of a batch has the same size (one frames array), so one clip size
        size = image_list.image_sizes[0]
        boxes = m.roi_heads.box_coder.decode(deltas, proposals)  # P x C x 4
        boxes[..., 0::2] = boxes[..., 0::2].clamp(0, size[1])
        boxes[..., 1::2] = boxes[..., 1::2].clamp(0, size[0])
        image_of = torch.cat([torch.zeros_like(p[:, 0], dtype=torch.int64) + i
                              for i, p in enumerate(proposals)])
        boxes, labels, scores, image_of = vinvl_filter(
            torch.softmax(logits, -1), boxes, image_of, batch, s)
        per_image = [boxes[image_of == i] for i in range(batch)]
        regions = pool_regions(m.roi_heads.box_roi_pool, features, per_image,
                               image_list.image_sizes)
        if s.region_feature == "roi":
            regions = regions.mean(dim=(2, 3))
        else:
            regions = m.roi_heads.box_head(regions)
        sx, sy = float(width) / float(size[1]), float(height) / float(size[0])
        scale = torch.tensor([sx, sy, sx, sy], dtype=boxes.dtype, device=boxes.device)
        return boxes * scale, labels, scores, regions, image_of


def pool_regions(pooler: MultiScaleRoIAlign, features: dict[str, torch.Tensor],
                 boxes: list[torch.Tensor], image_sizes: list[tuple[int, int]]) -> torch.Tensor:
    """The pooler's multi-scale RoIAlign; when tracing for ONNX, computed as a sum over FPN
    levels masked by each box's level (the same numbers), since torchvision's traced
    level merge does not run in onnxruntime for data-dependent box counts."""
    if not torch.jit.is_tracing():
        return pooler(features, boxes, image_sizes)
    maps = poolers._filter_input(features, pooler.featmap_names)
    if pooler.scales is None or pooler.map_levels is None:
        pooler.scales, pooler.map_levels = poolers._setup_scales(
            maps, image_sizes, pooler.canonical_scale, pooler.canonical_level)
    rois = poolers._convert_to_roi_format(boxes)
    levels = pooler.map_levels(boxes)
    out = torch.zeros(())
    for level, (fmap, scale) in enumerate(zip(maps, pooler.scales, strict=True)):
        pooled = roi_align(fmap, rois, pooler.output_size, spatial_scale=scale,
                           sampling_ratio=pooler.sampling_ratio)
        out = out + pooled * (levels == level).to(pooled.dtype)[:, None, None, None]
    return out


def vinvl_filter(probs: torch.Tensor, boxes: torch.Tensor, image_of: torch.Tensor, batch: int,
                 s: VinvlSettings) -> tuple[torch.Tensor, ...]:
    """VinVL's test filter on P proposals x C classes (class 0 = background).

    Per-class NMS over each proposal's top `class_candidates` classes; each proposal keeps its
    best surviving class; per image, the boxes scoring at least `score_thresh` (at least
    `min_detections`, topped up by score, at most `max_detections`). Returns boxes, labels,
    scores, image index, sorted by image then score.
    """
    num_classes = probs.shape[1]
    k = min(s.class_candidates, num_classes - 1)
    scores, labels = probs[:, 1:].topk(k, dim=1)
    labels = labels + 1
    proposal = torch.arange(probs.shape[0], device=probs.device)[:, None].expand(-1, k)
    proposal, scores, labels = proposal.reshape(-1), scores.reshape(-1), labels.reshape(-1)
    cand_boxes = boxes[proposal, labels]
    keep = batched_nms(cand_boxes, scores, image_of[proposal] * num_classes + labels,
                       s.nms_thresh)  # sorted by score, descending
    # the best surviving class of each proposal: group by proposal, best score first
    key = proposal[keep].double() * 2.0 - scores[keep].double()
    keep = keep[torch.argsort(key)]
    first = torch.ones_like(keep, dtype=torch.bool)
    first[1:] = proposal[keep][1:] != proposal[keep][:-1]
    keep = keep[first]
    # rank the survivors within their image by score
    image = image_of[proposal[keep]]
    keep = keep[torch.argsort(image.double() * 2.0 - scores[keep].double())]
    image = image_of[proposal[keep]]
    counts = (image[:, None] == torch.arange(batch, device=image.device)[None]).sum(0)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.arange(keep.shape[0], device=keep.device) - starts[image]
    chosen = ((scores[keep] >= s.score_thresh) & (rank < s.max_detections)) | (
        rank < min(s.min_detections, s.max_detections))
    keep = keep[chosen]
    return cand_boxes[keep], labels[keep], scores[keep], image_of[proposal[keep]]


@dataclass
class Detections:
    """What one frame's detector pass found, in the detected frame's pixel coordinates."""

    boxes: np.ndarray  # float32 K x 4, x1 y1 x2 y2
    labels: np.ndarray  # int64 K
    scores: np.ndarray  # float32 K (descending, except VinVL's own order)
    features: np.ndarray  # float32 K x D
    width: int
    height: int
    attr_ids: list[np.ndarray] | None = None  # per box: attribute ids (VinVL), else None
    attr_scores: list[np.ndarray] | None = None


def split_detections(outputs: dict[str, np.ndarray], n_images: int, width: int,
                     height: int) -> list[Detections]:
    """Flat detector outputs -> one :class:`Detections` per image."""
    image = outputs["image_index"]
    return [Detections(outputs["boxes"][image == i].astype(np.float32),
                       outputs["labels"][image == i].astype(np.int64),
                       outputs["scores"][image == i].astype(np.float32),
                       outputs["features"][image == i].astype(np.float32), width, height)
            for i in range(n_images)]


OUTPUTS = ("boxes", "labels", "scores", "features", "image_index")


def detect(detector: RegionDetector, frames: np.ndarray, device: torch.device | None = None,
           batch_size: int = 8, precision: Precision = "auto") -> list[Detections]:
    """Detections of uint8 N x H x W x 3 frames, `batch_size` frames per forward pass."""
    frames = _check(frames)
    device = device or next(detector.parameters()).device
    out: list[Detections] = []
    with torch.inference_mode(), autocast(device, precision):
        for start in range(0, len(frames), batch_size):
            chunk = frames[start:start + batch_size]
            result = detector(to_device(chunk, device))
            arrays = {k: v.float().cpu().numpy() if v.is_floating_point() else v.cpu().numpy()
                      for k, v in zip(OUTPUTS, result, strict=True)}
            out += split_detections(arrays, len(chunk), frames.shape[2], frames.shape[1])
    return out


def export_detector_onnx(detector: RegionDetector, path: str | Path, batch: int, height: int,
                         width: int) -> Path:
    """Export for a fixed batch and frame size (the RPN loops over images when traced);
    :func:`onnx_detect` pads the last batch."""
    from vlprep.models.onnx_runtime import export

    # a textured example: tracing on blank frames can bake degenerate shapes into the graph
    generator = torch.Generator().manual_seed(0)
    example = torch.randint(0, 256, (batch, height, width, 3), dtype=torch.uint8,
                            generator=generator)
    from vlprep.models.detector import region_feature_dim

    model = detector.model
    meta = {"model": "detector", "batch": batch, "height": height, "width": width,
            "settings": detector.settings.__dict__,
            "num_classes": int(model.roi_heads.box_predictor.cls_score.out_features),
            "feature_dim": region_feature_dim(model, detector.settings.region_feature)}
    dynamic = {name: {0: "n"} for name in OUTPUTS}
    return export(detector.float().cpu(), (example,), path, ["frames"], list(OUTPUTS),
                  dynamic, meta)


def onnx_detect(session, frames: np.ndarray) -> list[Detections]:
    """:func:`detect` through an exported detector (an ``OnnxSession``)."""
    frames = _check(frames)
    meta = session.metadata
    batch, height, width = int(meta["batch"]), int(meta["height"]), int(meta["width"])
    if frames.shape[1:3] != (height, width):
        raise ValueError(f"frames are {frames.shape[1]}x{frames.shape[2]} but the ONNX detector "
                         f"was exported for {height}x{width}")
    out: list[Detections] = []
    for start in range(0, len(frames), batch):
        chunk = frames[start:start + batch]
        padded = np.zeros((batch, height, width, 3), np.uint8)
        padded[:len(chunk)] = chunk
        result = session.run(frames=padded)
        out += split_detections(result, len(chunk), width, height)
    return out


def _check(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames N x H x W x 3, got {frames.dtype} {frames.shape}")
    return frames


def box_geometry(boxes: np.ndarray, width: int, height: int) -> np.ndarray:
    """Oscar's 6-d region geometry: x1/W, y1/H, x2/W, y2/H, w/W, h/H (float32 K x 6)."""
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    scale = np.array([width, height, width, height], np.float32)
    rel = boxes / scale
    return np.concatenate([rel, rel[:, 2:3] - rel[:, 0:1], rel[:, 3:4] - rel[:, 1:2]], axis=1)
