"""ALPRO's prompter crops: random boxes snapped to ViT patches, seeded per video.

ALPRO (src/datasets/dataset_pretrain_sparse.py, ``random_erase``) draws the area as
U(0.3, 0.5) of the frame and the aspect (height / width) as U(0.3, 1/0.3), takes
w = sqrt(area / aspect) and h = sqrt(area * aspect), draws the top-left corner anywhere in
the frame, rounds all four down to multiples of the patch size (16), and redraws until the
box fits. The same box is used on every sampled frame. ALPRO feeds the prompter the whole
frame with everything outside the box blacked out (``masked``); ``resized`` instead resizes
the box to the model's input size, the usual way to show CLIP a region.

Boxes come from a generator seeded by (seed, video_id), never by process state, so they are
the same in every run, worker and batch order.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

MAX_DRAWS = 1000


@dataclass(frozen=True)
class Box:
    left: int
    top: int
    width: int
    height: int


def video_rng(video_id: str, seed: int) -> np.random.Generator:
    """A generator that depends only on (seed, video_id)."""
    digest = hashlib.sha256(video_id.encode("utf-8")).digest()
    words = [int.from_bytes(digest[i:i + 4], "little") for i in range(0, 16, 4)]
    return np.random.default_rng(np.random.SeedSequence([seed, *words]))


def sample_box(rng: np.random.Generator, height: int, width: int, patch: int = 16,
               scale: tuple[float, float] = (0.3, 0.5),
               ratio: tuple[float, float] = (0.3, 1 / 0.3)) -> Box:
    """One ALPRO crop box; after MAX_DRAWS misses (tiny frames), the centred box of the mean
    area and aspect 1, so the result is still deterministic."""
    if height < patch or width < patch:
        raise ValueError(f"frames of {width}x{height} are smaller than one {patch}-pixel patch")
    area = height * width
    for _ in range(MAX_DRAWS):
        s = rng.uniform(*scale) * area
        r = rng.uniform(*ratio)
        w, h = int(math.sqrt(s / r)), int(math.sqrt(s * r))
        left, top = int(rng.integers(0, width)), int(rng.integers(0, height))
        w, h = w - w % patch, h - h % patch
        left, top = left - left % patch, top - top % patch
        if w >= patch and h >= patch and left + w <= width and top + h <= height:
            return Box(left, top, w, h)
    side = int(math.sqrt(sum(scale) / 2 * area))
    w = max(patch, min(side, width) // patch * patch)
    h = max(patch, min(side, height) // patch * patch)
    left = (width - w) // 2 // patch * patch
    top = (height - h) // 2 // patch * patch
    return Box(left, top, w, h)


def sample_boxes(video_id: str, seed: int, k: int, height: int, width: int,
                 patch: int = 16, scale: tuple[float, float] = (0.3, 0.5),
                 ratio: tuple[float, float] = (0.3, 1 / 0.3)) -> list[Box]:
    """The video's k boxes, always the same for the same (video_id, seed)."""
    rng = video_rng(video_id, seed)
    return [sample_box(rng, height, width, patch, scale, ratio) for _ in range(k)]


def crop_view(frames: np.ndarray, box: Box, view: str, size: int) -> np.ndarray:
    """What the prompter sees of the box on N x H x W x 3 uint8 frames: the frames with the
    outside black (``masked``, needs H = W = size) or the box resized to size x size."""
    b = box
    if view == "masked":
        out = np.zeros_like(frames)
        out[:, b.top:b.top + b.height, b.left:b.left + b.width] = \
            frames[:, b.top:b.top + b.height, b.left:b.left + b.width]
        return out
    if view != "resized":
        raise ValueError(f"unknown crop view {view!r}")
    region = np.ascontiguousarray(frames[:, b.top:b.top + b.height, b.left:b.left + b.width])
    x = torch.from_numpy(region).permute(0, 3, 1, 2)
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True,
                      align_corners=False)
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())
