"""VinVL's test-time box logic, as maskrcnn_benchmark / scene_graph_benchmark compute it.

Conventions kept from the original: pixel boxes are inclusive (``TO_REMOVE = 1``: a box's
width is x2 - x1 + 1, clipping is to [0, W - 1]); the box coder adds 1 to widths and
subtracts 1 from x2/y2; RoIAlign is torchvision's ``roi_align`` with ``aligned=False``
(what ``maskrcnn_benchmark.layers.roi_align`` resolves to); NMS is ``torchvision.ops.nms``
(what ``maskrcnn_benchmark.layers.nms`` resolves to at the repository's head commit, area
w * h, suppress when IoU > t). ``nms="legacy"`` gives the compiled kernel's +1 area instead.
Everything here runs in fp32, also when the networks run under autocast.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image
from torchvision.ops import nms as tv_nms
from torchvision.ops import roi_align

from vlprep.models.vinvl_net import VinVLConfig

BBOX_XFORM_CLIP = math.log(1000.0 / 16)


def resized_size(height: int, width: int, min_size: int, max_size: int) -> tuple[int, int]:
    """maskrcnn_benchmark's ``Resize.get_size``: shorter side to `min_size` unless the longer
    side would pass `max_size`; sizes truncated with int(). Returns (height, width)."""
    size = min_size
    small, large = float(min(width, height)), float(max(width, height))
    if large / small * size > max_size:
        size = int(round(max_size * small / large))
    if (width <= height and width == size) or (height <= width and height == size):
        return height, width
    if width < height:
        return int(size * height / width), size
    return size, int(size * width / height)


def resize_image(image: np.ndarray, c: VinVLConfig) -> np.ndarray:
    """uint8 H x W x 3 RGB -> the resized uint8 image (PIL bilinear, as torchvision's resize
    of the PIL image in the original transform)."""
    height, width = image.shape[:2]
    oh, ow = resized_size(height, width, c.min_size, c.max_size)
    if (oh, ow) == (height, width):
        return np.ascontiguousarray(image)
    return np.array(Image.fromarray(image).resize((ow, oh), Image.BILINEAR))


def normalize(images: torch.Tensor, c: VinVLConfig) -> torch.Tensor:
    """uint8 N x H x W x 3 RGB -> float N x 3 x H x W: ToTensor (/255), BGR x 255, minus the
    pixel mean, over the std, in that order (the same float rounding as the original)."""
    x = images.permute(0, 3, 1, 2).float().div(255)
    x = x[:, [2, 1, 0]] * 255
    mean = torch.tensor(c.pixel_mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(c.pixel_std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def decode(deltas: torch.Tensor, boxes: torch.Tensor,
           weights: tuple[float, float, float, float]) -> torch.Tensor:
    """BoxCoder.decode: deltas K x 4 against reference boxes K x 4 (the +1 width, -1 end)."""
    boxes = boxes.to(deltas.dtype)
    widths = boxes[:, 2] - boxes[:, 0] + 1
    heights = boxes[:, 3] - boxes[:, 1] + 1
    ctr_x = boxes[:, 0] + 0.5 * widths
    ctr_y = boxes[:, 1] + 0.5 * heights
    wx, wy, ww, wh = weights
    dx, dy = deltas[:, 0] / wx, deltas[:, 1] / wy
    dw = torch.clamp(deltas[:, 2] / ww, max=BBOX_XFORM_CLIP)
    dh = torch.clamp(deltas[:, 3] / wh, max=BBOX_XFORM_CLIP)
    px, py = dx * widths + ctr_x, dy * heights + ctr_y
    pw, ph = torch.exp(dw) * widths, torch.exp(dh) * heights
    return torch.stack([px - 0.5 * pw, py - 0.5 * ph, px + 0.5 * pw - 1, py + 0.5 * ph - 1],
                       dim=1)


def clip_boxes(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """BoxList.clip_to_image: x into [0, W - 1], y into [0, H - 1]."""
    x = boxes[:, 0::2].clamp(0, width - 1)
    y = boxes[:, 1::2].clamp(0, height - 1)
    return torch.stack([x[:, 0], y[:, 0], x[:, 1], y[:, 1]], dim=1)


def nms(boxes: torch.Tensor, scores: torch.Tensor, thresh: float,
        convention: str = "torchvision") -> torch.Tensor:
    """Kept indices, by descending score. ``legacy``: areas and overlaps with the +1 pixel
    (the same as torchvision's NMS on boxes whose x2, y2 grow by one)."""
    if convention == "legacy":
        boxes = boxes + torch.tensor([0.0, 0.0, 1.0, 1.0], device=boxes.device)
    return tv_nms(boxes.float(), scores.float(), thresh)


def iou_matrix(boxes: torch.Tensor, convention: str = "torchvision") -> torch.Tensor:
    """P x P IoU with torchvision's NMS arithmetic (inter / (area_i + area_j - inter))."""
    one = 1.0 if convention == "legacy" else 0.0
    area = (boxes[:, 2] - boxes[:, 0] + one) * (boxes[:, 3] - boxes[:, 1] + one)
    lt = torch.maximum(boxes[:, None, :2], boxes[None, :, :2])
    rb = torch.minimum(boxes[:, None, 2:], boxes[None, :, 2:])
    wh = (rb - lt + one).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    return inter / (area[:, None] + area[None, :] - inter)


def class_nms_mask(boxes: torch.Tensor, scores: torch.Tensor, thresh: float,
                   convention: str = "torchvision") -> torch.Tensor:
    """What NMS per class keeps, for P boxes shared by every class (IGNORE_BOX_REGRESSION):
    P x C bool, column 0 (background) False. The greedy NMS of all classes at once: one IoU
    matrix, then P steps over each class's score order (the same keeps as one NMS per class)."""
    num, classes = scores.shape
    keep = torch.zeros((classes - 1, num), dtype=torch.bool, device=scores.device)
    if num == 0:
        return torch.zeros_like(scores, dtype=torch.bool)
    suppresses = iou_matrix(boxes, convention) > thresh
    order = torch.sort(scores[:, 1:].t(), dim=1, descending=True, stable=True).indices
    rows = torch.arange(classes - 1, device=scores.device)
    for rank in range(num):
        box = order[:, rank]
        hit = (keep & suppresses[box]).any(dim=1)
        keep[rows, box] = ~hit
    return torch.cat([torch.zeros((num, 1), dtype=torch.bool, device=keep.device), keep.t()], 1)


def filter_detections(boxes: torch.Tensor, probs: torch.Tensor,
                      c: VinVLConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``PostProcessor.filter_results_peter`` (NMS_FILTER 1) for one image: per-class NMS at
    0.3, each proposal keeps its best surviving class, then the proposals scoring at least
    SCORE_THRESH; fewer than MIN_DETECTIONS or more than DETECTIONS_PER_IMG -> the top ones by
    score. Returns (proposal index, label, score); the order is the original's (proposal
    order when the count is in range, else by descending score)."""
    mask = class_nms_mask(boxes, probs, c.class_nms, c.nms)
    best, labels = (mask.to(probs.dtype) * probs).max(dim=1)
    index = torch.nonzero(best, as_tuple=True)[0]
    best, labels = best[index], labels[index]
    by_score = torch.sort(best, descending=True, stable=True).indices
    passing = torch.nonzero(best >= c.score_thresh, as_tuple=True)[0]
    if len(passing) < c.min_detections:
        chosen = by_score[:c.min_detections]
    elif len(passing) > c.max_detections:
        chosen = by_score[:c.max_detections]
    else:
        chosen = passing
    return index[chosen], labels[chosen], best[chosen]


def attribute_scores(logits: torch.Tensor,
                     c: VinVLConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``AttributePostProcessor.filter_results`` for one image's N boxes: softmax, background
    and scores <= ATTR_THRESH zeroed, the per-image cap (kthvalue over all N x A scores, as
    written), top MAX_NUM_ATTR_PER_OBJ per box -> (labels N x k int64, scores N x k). Slots
    with a zero score get label 0 (``__no_attribute__``), where topk leaves an arbitrary one."""
    probs = torch.softmax(logits.float(), dim=-1)
    probs[:, 0] = 0.0
    passing = probs > c.attr_thresh
    count = int(passing.sum())
    probs[~passing] = 0.0
    if count > c.max_attr_per_img > 0:
        cut = torch.kthvalue(probs.flatten().cpu(), count - c.max_attr_per_img + 1).values
        probs[probs < cut.item()] = 0.0
    k = min(c.max_attr_per_obj, probs.shape[1])
    scores, labels = torch.topk(probs, k, dim=1)
    labels = torch.where(scores > 0, labels, torch.zeros_like(labels))
    return labels, scores


def pool(features: torch.Tensor, boxes: list[torch.Tensor], c: VinVLConfig) -> torch.Tensor:
    """The Pooler with one level: RoIAlign POOLER_RESOLUTION at 1/16, sampling ratio 0,
    aligned=False; `boxes` one K_i x 4 tensor per image of the batch."""
    rois = torch.cat([torch.cat([torch.full_like(b[:, :1], i), b], dim=1)
                      for i, b in enumerate(boxes)])
    size = (c.pooler_resolution, c.pooler_resolution)
    return roi_align(features, rois.to(features.dtype), size, spatial_scale=c.pooler_scale,
                     sampling_ratio=c.sampling_ratio, aligned=False)


def rpn_proposals(objectness: torch.Tensor, deltas: torch.Tensor, anchors: torch.Tensor,
                  height: int, width: int, c: VinVLConfig) -> torch.Tensor:
    """RPNPostProcessor for one image of one level: objectness A x h x w, deltas 4A x h x w
    -> up to POST_NMS_TOP_N boxes (by descending objectness) in resized-image pixels."""
    num_anchors, fh, fw = objectness.shape
    scores = objectness.permute(1, 2, 0).reshape(-1).float().sigmoid()
    deltas = deltas.view(num_anchors, 4, fh, fw).permute(2, 3, 0, 1).reshape(-1, 4).float()
    top = min(c.pre_nms_top_n, scores.numel())
    scores, index = scores.topk(top, sorted=True)
    boxes = clip_boxes(decode(deltas[index], anchors[index], (1.0, 1.0, 1.0, 1.0)),
                       height, width)
    ws, hs = boxes[:, 2] - boxes[:, 0] + 1, boxes[:, 3] - boxes[:, 1] + 1
    big = torch.nonzero((ws >= c.rpn_min_size) & (hs >= c.rpn_min_size), as_tuple=True)[0]
    boxes, scores = boxes[big], scores[big]
    keep = nms(boxes, scores, c.rpn_nms, c.nms)[:c.post_nms_top_n]
    return boxes[keep]


def resize_boxes(boxes: torch.Tensor, source: tuple[int, int],
                 target: tuple[int, int]) -> torch.Tensor:
    """BoxList.resize from (width, height) `source` to `target`: one ratio when both agree."""
    rw, rh = (float(t) / float(s) for t, s in zip(target, source, strict=True))
    if rw == rh:
        return boxes * rw
    return boxes * torch.tensor([rw, rh, rw, rh], dtype=boxes.dtype, device=boxes.device)
