"""`vlprep export stoa`, read back as STOA-VLP's loaders do: ``torch.load`` of every
``object_attr_<K>_<i>_<n>.pth`` shard (here with ``weights_only=True``) merged into one dict,
``conf_set.items()[:2K]`` looked up in the label map's ``idx_to_label``, and the per-video
``tsv_files/<video_id>.json`` frame lists."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from export_fake_store import (
    CLASSES,
    FRAMES,
    HEIGHT,
    RULES,
    WIDTH,
    by_video,
    read_table,
    write_store,
)

from vlprep.export.stoa import StoaOptions, export_stoa
from vlprep.stages.detect import DetectedFrames
from vlprep.stages.trajectories import TrajectoriesOptions, build_trajectories

K = RULES["max_objects"]


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_store(tmp_path_factory.mktemp("stoa"))


def detections(rows: list[dict]) -> DetectedFrames:
    rows = sorted(rows, key=lambda r: r["sample_rank"])
    return DetectedFrames(
        boxes=[np.array(r["boxes"], np.float32).reshape(-1, 4) for r in rows],
        labels=[np.array(r["classes"], np.int64) for r in rows],
        scores=[np.array(r["scores"], np.float32) for r in rows],
        names=CLASSES, indices=np.array([r["frame_index"] for r in rows]),
        width=WIDTH, height=HEIGHT)


def load_shards(out: Path, n: int) -> dict[str, dict]:
    cache: dict[str, dict] = {}
    for i in range(n):  # STOA-VLP: for i in range(300): update(torch.load(...))
        shard = torch.load(out / f"object_attr_{K}_{i}_{n}.pth", weights_only=True)
        assert not set(shard) & set(cache)
        cache.update(shard)
    return cache


def test_stoa_object_cache(store: Path, tmp_path: Path) -> None:
    report = export_stoa(str(store), str(tmp_path / "out"), StoaOptions(shards=3))
    out = tmp_path / "out"
    cache = load_shards(out, 3)
    regions = by_video(read_table(store, "regions"))
    assert sorted(cache) == sorted(regions) and "v6" not in cache
    assert report.counts == {"videos": 7, "frames": 7 * FRAMES}
    label_map = json.loads((out / "labelmap.json").read_text())
    assert label_map["idx_to_label"] == {str(i): c for i, c in enumerate(CLASSES) if i}
    assert label_map["label_to_idx"] == {c: i for i, c in enumerate(CLASSES) if i}
    rules = TrajectoriesOptions(**RULES)
    scale = np.array([224 / WIDTH, 224 / HEIGHT] * 2, np.float32)
    for vid, entry in cache.items():
        objects, obj_cls = entry["objects"], entry["obj_cls"]
        assert objects.dtype == torch.float32 and objects.shape == (FRAMES, K, 4)
        assert obj_cls.dtype == torch.int64 and obj_cls.shape == (FRAMES, K)
        assert isinstance(entry["attr_sentence"], str)
        conf_set = entry["conf_set"]
        assert all(isinstance(c, int) and isinstance(v, float) for c, v in conf_set.items())
        # the same objects the trajectories stage groups: conf_set starts with its trajectories
        trajectories = build_trajectories(detections(regions[vid]), rules)
        first = list(conf_set.items())[: rules.max_trajectories]
        assert [c for c, _ in first] == [t.class_id for t in trajectories]
        np.testing.assert_allclose([v for _, v in first], [t.confidence for t in trajectories],
                                   rtol=1e-5)
        frames = sorted(regions[vid], key=lambda r: r["sample_rank"])
        for t, frame in enumerate(frames):
            present = obj_cls[t] != 0
            n = int(present.sum())
            assert present[:n].all() and (objects[t, n:] == -1).all()  # padding at the end
            boxes = objects[t, :n].numpy()
            areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
            assert (np.diff(areas) <= 1e-3).all()  # largest first
            source = np.array(frame["boxes"], np.float32).reshape(-1, 4) * scale
            for box, cls in zip(boxes, obj_cls[t, :n].tolist(), strict=True):
                match = np.abs(source - box).max(axis=1) < 1e-3
                assert match.any() and cls in np.array(frame["classes"])[match]
            for tr in trajectories:  # each trajectory's box here is one of the frame's objects
                if tr.present[t]:
                    hit = np.abs(boxes - tr.boxes[t]).max(axis=1) < 1e-3
                    assert (obj_cls[t, :n][torch.from_numpy(hit)] == tr.class_id).any()
        # STOA-VLP's use of the cache: the first 2K conf_set ids, named through the label map
        names = [label_map["idx_to_label"].get(str(c), 0) for c, _ in first]
        assert all(isinstance(name, str) for name in names)
        words = [w for w in entry["attr_sentence"].split(", ") if w]
        assert len(words) == len(set(words)) <= 10
        assert set(words) <= {CLASSES[c] for c in obj_cls.unique().tolist() if c}


def test_stoa_frame_lists(store: Path, tmp_path: Path) -> None:
    export_stoa(str(store), str(tmp_path / "out"), StoaOptions(shards=1))
    regions = by_video(read_table(store, "regions"))
    for vid, rows in regions.items():
        frames = json.loads((tmp_path / "out" / "tsv_files" / f"{vid}.json").read_text())
        rows = sorted(rows, key=lambda r: r["sample_rank"])
        assert len(frames) == len(rows) == FRAMES
        for frame, row in zip(frames, rows, strict=True):
            objs = frame["objects"]
            assert len(objs) == len(row["scores"])
            assert [o["conf"] for o in objs] == sorted((o["conf"] for o in objs), reverse=True)
            for o in objs:
                x1, y1, x2, y2 = o["rect"]
                assert 0 <= x1 < x2 <= 224.01 and 0 <= y1 < y2 <= 224.01
                assert o["class"] in CLASSES and o["attributes"] == o["attr_scores"] == []
    assert json.loads((tmp_path / "out" / "tsv_files" / "v0.json").read_text())[2] == {
        "objects": []}  # the frame with no boxes


def test_stoa_single_split_file(store: Path, tmp_path: Path) -> None:
    export_stoa(str(store), str(tmp_path / "out"), StoaOptions(split="train", frame_json=False))
    out = tmp_path / "out"
    cache = torch.load(out / f"object_attr_train_{K}.pth", weights_only=True)
    assert len(cache) == 7 and not (out / "tsv_files").exists()
    assert not list(out.glob(f"object_attr_{K}_*"))
