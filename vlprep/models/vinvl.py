"""VinVL's published detector (``vinvl_vg_x152c4.pth``) in plain torch + torchvision ops.

``VinVL.from_checkpoint(path)`` loads the file strictly (:mod:`vinvl_checkpoint`);
``detect(images)`` runs what scene_graph_benchmark's feature extraction runs for each
image (``tools/test_sg_net.py`` with ``sgg_configs/vgattr/vinvl_x152c4.yaml``,
MODEL.ROI_HEADS.NMS_FILTER 1, SCORE_THRESH 0.2, TEST.IGNORE_BOX_REGRESSION True, attributes
on, OUTPUT_FEATURE True): resize 600/1000, BGR minus the pixel mean, R-152-C4, RPN (6000 ->
NMS 0.7 -> 300), RoIAlign 14x14, res5 + average pool (the 2,048-d region feature), class
scores, ``filter_results_peter`` (boxes are the proposals), the attribute head on the kept
boxes, boxes scaled back to the input's pixels.

Images are not padded: each forward pass takes images of one resized size (the same-size
frames of a video batch together), so no result depends on another image. On GPU the
networks run under bf16/fp16 autocast; the box logic and the attribute head's
post-processing run in fp32. Per-part wall times accumulate in ``timings`` when it is a dict.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from vlprep.models.accel import Precision, autocast, to_device
from vlprep.models.vinvl_checkpoint import empty_net, load_into, random_state, read_state
from vlprep.models.vinvl_net import X152C4, VinVLConfig, VinVLNet
from vlprep.models.vinvl_ops import (
    attribute_scores,
    filter_detections,
    normalize,
    pool,
    resize_boxes,
    resize_image,
    rpn_proposals,
)

OUTPUT_KEYS = ("boxes", "scores", "labels", "features", "attr_labels", "attr_scores")


class VinVL(nn.Module):
    """VinVL X152-C4 with attributes; see the module docstring for what ``detect`` does."""

    def __init__(self, net: VinVLNet):
        super().__init__()
        self.net = net.eval()
        self.config: VinVLConfig = net.config
        self.precision: Precision = "auto"
        self.timings: dict[str, float] | None = None

    @classmethod
    def from_checkpoint(cls, path: str | Path, config: VinVLConfig = X152C4,
                        sha256: str | None = None, device: str | torch.device = "cpu") -> VinVL:
        """The published file (``{'model': sd}`` or bare, ``module.`` allowed), strictly."""
        net = empty_net(config)
        load_into(net, read_state(path, sha256), str(path))
        return cls(net).to(device).eval()

    @classmethod
    def random(cls, config: VinVLConfig = X152C4, seed: int = 0) -> VinVL:
        """Seeded random weights in the published layout (tests, demos, benchmarks)."""
        net = empty_net(config)
        load_into(net, random_state(config, seed), f"random(seed={seed})")
        return cls(net).eval()

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    @contextmanager
    def _timed(self, part: str):
        if self.timings is None:
            yield
            return
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        start = time.perf_counter()
        yield
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        self.timings[part] = self.timings.get(part, 0.0) + time.perf_counter() - start

    # the networks (the ONNX runtime replaces these three)
    def trunk(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Normalised N x 3 x H x W -> C4 features, RPN objectness, RPN deltas."""
        with self._timed("backbone"):
            c4 = self.net.backbone(x)
        with self._timed("rpn"):
            objectness, deltas = self.net.rpn.head(c4)
        return c4, objectness, deltas

    def box_head(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net.roi_heads.box(pooled)

    def attribute_logits(self, features: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.net.attribute.predictor(features, labels)

    def anchors(self, height: int, width: int) -> torch.Tensor:
        return self.net.rpn.anchor_generator(height, width)

    def detect(self, images: list[np.ndarray], batch_size: int = 8,
               precision: Precision | None = None) -> list[dict[str, np.ndarray]]:
        """uint8 H x W x 3 RGB images of any sizes -> one dict of numpy arrays per image:
        boxes (N x 4, x1 y1 x2 y2 input pixels), scores, labels (1..C-1), features
        (N x 2048 float32), attr_labels / attr_scores (N x 16, zero-padded)."""
        images = [check_image(im) for im in images]
        resized = [resize_image(im, self.config) for im in images]
        out: list[dict[str, np.ndarray] | None] = [None] * len(images)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, r in enumerate(resized):
            groups.setdefault(r.shape[:2], []).append(i)
        for members in groups.values():
            for start in range(0, len(members), batch_size):
                chunk = members[start:start + batch_size]
                batch = np.stack([resized[i] for i in chunk])
                sizes = [(images[i].shape[1], images[i].shape[0]) for i in chunk]
                for i, result in zip(chunk, self.detect_resized(batch, sizes, precision),
                                     strict=True):
                    out[i] = result
        return out  # type: ignore[return-value]

    @torch.inference_mode()
    def detect_resized(self, batch: np.ndarray, sizes: list[tuple[int, int]],
                       precision: Precision | None = None) -> list[dict[str, np.ndarray]]:
        """Already-resized uint8 N x h x w x 3 images of one size; `sizes` the (width,
        height) of each original, the boxes' target frame."""
        c, device = self.config, self.device
        precision = precision or self.precision
        height, width = batch.shape[1:3]
        x = normalize(to_device(batch, device), c)
        with autocast(device, precision):
            c4, objectness, deltas = self.trunk(x)
        with self._timed("rpn"):
            anchors = self.anchors(c4.shape[2], c4.shape[3])
            proposals = [rpn_proposals(objectness[i], deltas[i], anchors, height, width, c)
                         for i in range(len(batch))]
        with self._timed("box_head"), autocast(device, precision):
            features, logits = self.box_head(pool(c4, proposals, c))
        features, logits = features.float(), logits.float()
        with self._timed("postprocess"):
            kept = []
            for i, chunk in enumerate(zip(features.split([len(p) for p in proposals]),
                                          logits.split([len(p) for p in proposals]),
                                          strict=True)):
                index, labels, scores = filter_detections(
                    proposals[i], torch.softmax(chunk[1], -1), c)
                kept.append((proposals[i][index], labels, scores, chunk[0][index]))
        with self._timed("box_head"), autocast(device, precision):
            attr = self.attribute_logits(torch.cat([k[3] for k in kept]),
                                         torch.cat([k[1] for k in kept]))
        with self._timed("postprocess"):
            results = []
            for (boxes, labels, scores, feats), attr_i, size in zip(
                    kept, attr.float().split([len(k[1]) for k in kept]), sizes, strict=True):
                attr_labels, attr_scores = attribute_scores(attr_i, c)
                boxes = resize_boxes(boxes, (width, height), size)
                results.append(to_numpy(boxes, scores, labels, feats, attr_labels,
                                        attr_scores))
        return results


def to_numpy(*tensors: torch.Tensor) -> dict[str, np.ndarray]:
    types: tuple[Any, ...] = (np.float32, np.float32, np.int64, np.float32, np.int64,
                              np.float32)
    return {k: t.detach().cpu().numpy().astype(d, copy=False)
            for k, t, d in zip(OUTPUT_KEYS, tensors, types, strict=True)}


def check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8 or min(
            image.shape[:2]) < 1:
        raise ValueError(f"expected a uint8 H x W x 3 RGB image, got {image.dtype} "
                         f"{image.shape}")
    return image
