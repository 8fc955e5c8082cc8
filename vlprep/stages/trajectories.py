"""STOA-VLP object trajectories: one `trajectories` row per (video, object class).

From the detections the detect stage left on the record, per sampled frame, STOA-VLP's rule
(``object_loader_confident`` in its ``modules/utils_object_tractor.py``; ``selection: stoa``,
the default): going down the boxes by confidence, keep only the first (most confident) box of
each class, and drop it too when it overlaps an already kept box of another class at
IoU >= 0.5; stop at 2 x 10 kept boxes, keep the 10 largest of them. (STOA's same-class
IoU >= 0.2 test sits in a branch that never keeps a second box of a class, whatever its IoU.)
``selection: same_class_iou`` is our variant: a second box of a class is kept unless it
overlaps a kept box of its class at IoU >= ``same_class_iou``. Boxes without area are left
out (STOA-VLP's IoU asserts x1 < x2 and y1 < y2).

Across the frames the kept objects are grouped by class; each class is a trajectory with its
summed confidence and its first appearance, and at most 20 are kept per video: the first 20
to appear (STOA-VLP's order) or the 20 most confident (``order: confidence``). A trajectory
has one box per sampled frame, the class's most confident kept box there, in
``frame_size``-pixel frame coordinates (STOA-VLP: 224), -1 and a False mask where the class
is absent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import pyarrow as pa
from pydantic import Field

from vlprep.schemas import TRAJECTORIES
from vlprep.stages.base import Contract, Record, Resources, Stage, StageOptions, VideoError, emit
from vlprep.stages.detect import DetectedFrames


class TrajectoriesOptions(StageOptions):
    detections: str = Field(default="detections", description="record key of the detections")
    selection: Literal["stoa", "same_class_iou"] = Field(
        default="stoa", description="stoa: one box per class and frame, as STOA-VLP's loader; "
                                    "same_class_iou: also other boxes of a kept class")
    max_objects: int = Field(default=10, gt=0, description="objects kept per frame")
    candidates: int = Field(default=20, gt=0, description="most confident boxes, of which "
                                                          "the max_objects largest are kept")
    same_class_iou: float = Field(default=0.2, gt=0, le=1,
                                  description="with selection: same_class_iou only")
    cross_class_iou: float = Field(default=0.5, gt=0, le=1)
    max_trajectories: int = Field(default=20, gt=0)
    order: Literal["first_appearance", "confidence"] = "first_appearance"
    frame_size: int = Field(default=224, gt=0, description="side of the output frame")


def iou(box: np.ndarray, boxes: np.ndarray) -> np.ndarray:
    """IoU of one x1 y1 x2 y2 box with each of K boxes, in float64 (as STOA-VLP's Python
    floats: the same operations in the same order, so thresholds fall the same way)."""
    box, boxes = np.asarray(box, np.float64), np.asarray(boxes, np.float64)
    x1 = np.maximum(box[0], boxes[:, 0])
    y1 = np.maximum(box[1], boxes[:, 1])
    x2 = np.minimum(box[2], boxes[:, 2])
    y2 = np.minimum(box[3], boxes[:, 3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    area = (box[2] - box[0]) * (box[3] - box[1])
    areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    union = area + areas - inter
    return np.where(union > 0, inter / np.where(union > 0, union, 1), 0.0)


def select_objects(boxes: np.ndarray, labels: np.ndarray, scores: np.ndarray,
                   opts: TrajectoriesOptions) -> np.ndarray:
    """Indices of one frame's kept objects, largest first (STOA-VLP's slot order)."""
    kept: list[int] = []
    for i in np.argsort(-scores, kind="stable"):
        if not (boxes[i, 2] > boxes[i, 0] and boxes[i, 3] > boxes[i, 1]):
            continue
        if kept:
            same = labels[kept] == labels[i]
            if opts.selection == "stoa" and same.any():
                continue
            overlap = iou(boxes[i], boxes[kept])
            limit = np.where(same, opts.same_class_iou, opts.cross_class_iou)
            if np.any(overlap >= limit):
                continue
        kept.append(int(i))
        if len(kept) == opts.candidates:
            break
    kept_arr = np.array(kept, np.int64)
    b = boxes[kept_arr].astype(np.float64)
    area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    return kept_arr[np.argsort(-area, kind="stable")][: opts.max_objects]


@dataclass
class Trajectory:
    class_id: int
    confidence: float
    first: tuple[int, int]  # (frame, slot) of first appearance
    boxes: np.ndarray  # float32 T x 4, -1 where absent
    scores: np.ndarray  # float32 T, 0 where absent
    present: np.ndarray  # bool T


def build_trajectories(dets: DetectedFrames, opts: TrajectoriesOptions) -> list[Trajectory]:
    """Group the kept objects of every frame by class; the chosen trajectories, in order."""
    n = len(dets)
    scale = np.array([opts.frame_size / dets.width, opts.frame_size / dets.height] * 2,
                     np.float32)
    by_class: dict[int, Trajectory] = {}
    for t in range(n):
        keep = select_objects(dets.boxes[t], dets.labels[t], dets.scores[t], opts)
        for slot, i in enumerate(keep):
            label, score = int(dets.labels[t][i]), float(dets.scores[t][i])
            tr = by_class.get(label)
            if tr is None:
                tr = by_class[label] = Trajectory(label, 0.0, (t, slot),
                                                  np.full((n, 4), -1, np.float32),
                                                  np.zeros(n, np.float32), np.zeros(n, bool))
            tr.confidence += score
            if not tr.present[t] or score > tr.scores[t]:
                tr.present[t], tr.scores[t] = True, score
                tr.boxes[t] = dets.boxes[t][i] * scale
    ordered = sorted(by_class.values(), key=lambda tr: tr.first)
    if opts.order == "confidence":
        ordered = sorted(ordered, key=lambda tr: -tr.confidence)
    return ordered[: opts.max_trajectories]


class TrajectoriesStage(Stage[TrajectoriesOptions]):
    """Reads the detections under ``detections``; emits the `trajectories` rows."""

    kind = "trajectories"
    stateful = False
    tables = ("trajectories",)
    default_resources = Resources(num_cpus=1.0, batch_size=8)

    @classmethod
    def contract(cls, options: TrajectoriesOptions) -> Contract:
        return Contract(reads=(options.detections,), tables=cls.tables)

    def process(self, record: Record) -> None:
        opts = self.options
        dets = record.get(opts.detections)
        if not isinstance(dets, DetectedFrames):
            raise VideoError(f"no detections under {opts.detections!r} (is a detect stage "
                             f"with key: {opts.detections} before this one?)")
        emit(record, "trajectories", self.rows(record, dets, build_trajectories(dets, opts)))

    def rows(self, record: Record, dets: DetectedFrames, trs: list[Trajectory]) -> pa.Table:
        opts = self.options
        k, n = len(trs), len(dets)
        offsets = pa.array(np.arange(k + 1, dtype=np.int32) * n)
        boxes = np.concatenate([tr.boxes for tr in trs]) if trs else np.zeros((0, 4), np.float32)
        scores = np.concatenate([tr.scores for tr in trs]) if trs else np.zeros(0, np.float32)
        mask = np.concatenate([tr.present for tr in trs]) if trs else np.zeros(0, bool)
        flat_boxes = pa.FixedSizeListArray.from_arrays(pa.array(boxes.reshape(-1)), 4)
        return pa.Table.from_arrays([
            pa.array([record["video_id"]] * k, pa.string()),
            pa.array(np.arange(k, dtype=np.int16)),
            pa.array([tr.class_id for tr in trs], pa.int32()),
            pa.array([dets.names[tr.class_id] for tr in trs], pa.string()),
            pa.array([tr.confidence for tr in trs], pa.float32()),
            pa.array([tr.first[0] for tr in trs], pa.int16()),
            pa.array(np.full(k, opts.frame_size, np.int16)),
            pa.ListArray.from_arrays(offsets, pa.array(np.tile(dets.indices, k).astype(np.int32))),
            pa.ListArray.from_arrays(offsets, flat_boxes),
            pa.ListArray.from_arrays(offsets, pa.array(scores)),
            pa.ListArray.from_arrays(offsets, pa.array(mask)),
        ], schema=TRAJECTORIES)
