from __future__ import annotations

import numpy as np
import pytest
from conftest import TINY_DETECTOR

from vlprep.schemas import TRAJECTORIES
from vlprep.stages.base import OUTPUTS, Resources, VideoError
from vlprep.stages.detect import DetectedFrames, DetectOptions, DetectStage
from vlprep.stages.frames import SampledFrames
from vlprep.stages.trajectories import (
    TrajectoriesOptions,
    TrajectoriesStage,
    iou,
    select_objects,
)

NAMES = ["__background__", "man", "dog", "ball", "tree", "car"]


def frame(*objects: tuple[int, float, tuple[float, float, float, float]]):
    """(label, score, box) objects -> the arrays of one frame, sorted by score."""
    objects = sorted(objects, key=lambda o: -o[1])
    return (np.array([o[2] for o in objects], np.float32).reshape(-1, 4),
            np.array([o[0] for o in objects], np.int64),
            np.array([o[1] for o in objects], np.float32))


def detected(*frames_, size: int = 448) -> DetectedFrames:
    return DetectedFrames([f[0] for f in frames_], [f[1] for f in frames_],
                          [f[2] for f in frames_], NAMES,
                          np.arange(len(frames_), dtype=np.int64) * 5, size, size)


def run(dets: DetectedFrames, **options) -> list[dict]:
    record = {"video_id": "v", "partition": 0, "detections": dets}
    TrajectoriesStage(TrajectoriesOptions(**options), Resources())([record])
    table = record[OUTPUTS]["trajectories"]
    assert table.schema.equals(TRAJECTORIES, check_metadata=True)
    return table.to_pylist()


def test_iou():
    box = np.array([0, 0, 10, 10], np.float32)
    others = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30], [0, 0, 0, 0]],
                      np.float32)
    np.testing.assert_allclose(iou(box, others), [1, 1 / 3, 0, 0])


def test_our_rule_drops_same_class_at_iou_02_and_other_class_at_iou_05():
    opts = TrajectoriesOptions(selection="same_class_iou")
    boxes, labels, scores = frame(
        (1, 0.9, (0, 0, 100, 100)),
        (1, 0.8, (70, 0, 170, 100)),   # same class, IoU 0.18: kept
        (1, 0.7, (60, 0, 160, 100)),   # same class as the first, IoU 0.25: dropped
        (2, 0.6, (40, 0, 140, 100)),   # other class, IoU with the first 0.43 (< 0.5), with
                                       # the second 0.54: dropped
        (3, 0.5, (0, 0, 100, 90)),     # other class, IoU 0.9: dropped
        (4, 0.4, (300, 300, 310, 310)),  # far away: kept
    )
    kept = select_objects(boxes, labels, scores, opts)
    assert sorted(scores[kept].tolist()) == pytest.approx([0.4, 0.8, 0.9])
    assert scores[kept].tolist() == pytest.approx([0.9, 0.8, 0.4])  # largest first


def test_stoa_rule_never_keeps_a_second_box_of_a_class():
    """STOA-VLP's object_loader_confident: a class's later boxes fall through its loop
    whatever their IoU; a new class is dropped at cross-class IoU >= 0.5 with a kept box."""
    assert TrajectoriesOptions().selection == "stoa"
    boxes, labels, scores = frame(
        (1, 0.9, (0, 0, 100, 100)),
        (1, 0.8, (500, 0, 600, 100)),    # same class, disjoint: still dropped
        (2, 0.7, (40, 0, 140, 100)),     # other class, IoU 0.43 < 0.5: kept
        (3, 0.6, (0, 0, 100, 90)),       # other class, IoU 0.9 with the first: dropped
        (3, 0.55, (300, 300, 310, 310)),  # class 3 was dropped above, so this one is its
                                          # first kept box: kept
        (2, 0.5, (700, 700, 900, 900)),  # second box of class 2, the largest: dropped
        (4, 0.4, (5, 5, 5, 50)),         # no area: left out (STOA's IoU asserts x1 < x2)
    )
    kept = select_objects(boxes, labels, scores, TrajectoriesOptions())
    assert labels[kept].tolist() == [1, 2, 3]  # largest first: 100x100, 100x100, 10x10
    assert scores[kept].tolist() == pytest.approx([0.9, 0.7, 0.55])


def test_stoa_rule_cuts_to_twenty_most_confident_then_ten_largest_distinct_classes():
    # 30 boxes of 25 classes (5 repeated, later, larger: never kept), all disjoint
    objects = [(1 + i, 1.0 - i / 100, (i * 40, 0, i * 40 + 10 + i, 10 + i)) for i in range(25)]
    objects += [(1 + i, 0.3, (2000 + i * 100, 0, 2090 + i * 100, 90)) for i in range(5)]
    boxes, labels, scores = frame(*objects)
    kept = select_objects(boxes, labels, scores, TrajectoriesOptions())
    assert (labels[kept] - 1).tolist() == list(range(19, 9, -1))


def test_twenty_most_confident_then_ten_largest():
    opts = TrajectoriesOptions(selection="same_class_iou")
    # 25 disjoint boxes; confidence falls with i, size grows with i
    objects = [(1 + i % 5, 1.0 - i / 100, (i * 40, 0, i * 40 + 10 + i, 10 + i))
               for i in range(25)]
    boxes, labels, scores = frame(*objects)
    kept = select_objects(boxes, labels, scores, opts)
    # the 20 most confident are i = 0..19; the 10 largest of those are i = 19..10
    assert (np.round((1.0 - scores[kept]) * 100).astype(int)).tolist() == list(
        range(19, 9, -1))


def test_trajectories_group_by_class_in_224_coordinates():
    dets = detected(
        frame((1, 0.9, (0, 0, 448, 448)), (2, 0.5, (200, 200, 210, 210))),
        frame((2, 0.6, (100, 100, 120, 120))),
        frame((3, 0.3, (0, 0, 10, 10)), (1, 0.8, (224, 224, 448, 448))),
    )
    rows = run(dets)
    assert [(r["trajectory"], r["class_name"], r["first_frame"]) for r in rows] == [
        (0, "man", 0), (1, "dog", 0), (2, "ball", 2)]
    man, dog, ball = rows
    assert man["confidence"] == pytest.approx(1.7) and dog["confidence"] == pytest.approx(1.1)
    assert man["mask"] == [True, False, True] and ball["mask"] == [False, False, True]
    assert man["boxes"] == [[0, 0, 224, 224], [-1, -1, -1, -1], [112, 112, 224, 224]]
    assert man["scores"] == pytest.approx([0.9, 0, 0.8])
    assert dog["boxes"][1] == [50, 50, 60, 60] and man["frame_index"] == [0, 5, 10]
    assert {r["frame_size"] for r in rows} == {224}


def test_at_most_twenty_trajectories_first_or_most_confident():
    names = [f"c{i}" for i in range(30)]
    objects = [[(c, 0.5 + c / 100, (c * 20, 0, c * 20 + 10, 10))] for c in range(1, 26)]
    dets = detected(*[frame(*o) for o in objects])  # class c first appears in frame c - 1
    dets.names = ["__background__", *names]
    first = run(dets)
    assert len(first) == 20 and [r["class_id"] for r in first] == list(range(1, 21))
    confident = run(dets, order="confidence", max_trajectories=3)
    assert [r["class_id"] for r in confident] == [25, 24, 23]
    assert all(len(r["mask"]) == 25 for r in first)


def test_a_video_without_objects_has_no_rows_and_missing_detections_fail():
    assert run(detected(frame(), frame())) == []
    with pytest.raises(VideoError, match="no detections under 'detections'"):
        TrajectoriesStage(TrajectoriesOptions(), Resources())([{"video_id": "v"}])


def test_detect_then_trajectories():
    """The STOA chain on random frames with a tiny random detector (init: random)."""
    rng = np.random.default_rng(0)
    record = {"video_id": "v", "partition": 0, "frames": SampledFrames(
        rng.integers(0, 256, (3, 64, 64, 3), dtype=np.uint8), np.arange(3), np.zeros(3))}
    DetectStage(DetectOptions(init="random", label_map="coco", **TINY_DETECTOR),
                Resources())([record])
    TrajectoriesStage(TrajectoriesOptions(), Resources())([record])
    rows = record[OUTPUTS]["trajectories"].to_pylist()
    regions = record[OUTPUTS]["regions"].to_pylist()
    assert 1 <= len(rows) <= 20
    seen = {c for r in regions for c in r["classes"]}
    assert {r["class_id"] for r in rows} <= seen
    for r in rows:
        present = np.array(r["boxes"])[np.array(r["mask"])]
        assert present.min() >= 0 and present.max() <= 224  # 64-px frames scaled to 224
