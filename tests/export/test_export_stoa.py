"""`vlprep export stoa`, read back as STOA-VLP's loaders do: ``torch.load`` of every
``object_attr_<K>_<i>_<n>.pth`` shard (here with ``weights_only=True``) merged into one dict,
``conf_set.items()[:2K]`` looked up in the label map's ``idx_to_label``, the per-video
``tsv_files/<video_id>.json`` frame lists, and the POS file indexed by caption position."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from export_fake_store import (
    ATTRIBUTES,
    CAPTION_POS,
    CLASSES,
    EXPORTED_NAMES,
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
    assert report.counts == {"videos": 7, "frames": 7 * FRAMES, "captions": 5}
    label_map = json.loads((out / "labelmap.json").read_text())
    assert label_map["idx_to_label"] == {str(i): c for i, c in enumerate(EXPORTED_NAMES) if i}
    assert label_map["label_to_idx"] == {c: i for i, c in enumerate(EXPORTED_NAMES) if i}
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
        phrases = [p for p in entry["attr_sentence"].split(", ") if p]
        kept_names = {EXPORTED_NAMES[c] for c in obj_cls.unique().tolist() if c}
        named = [next(n for n in kept_names if p == n or p.endswith(" " + n)) for p in phrases]
        assert len(named) == len(set(named)) <= 10  # each class once, attributes before it
        for phrase, name in zip(phrases, named, strict=True):
            words = phrase[: len(phrase) - len(name)].split()
            assert len(words) <= 2 and set(words) <= set(ATTRIBUTES[1:])
            assert sum(w in {"white", "black", "red", "green"} for w in words) <= 1
            if vid in ("v4", "v5", "v6"):  # a detector without attributes: names alone
                assert not words


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
            order = np.argsort(-np.array(row["scores"]), kind="stable")
            for o, i in zip(objs, order, strict=True):  # every box has area here
                x1, y1, x2, y2 = o["rect"]
                assert 0 <= x1 < x2 <= 224.01 and 0 <= y1 < y2 <= 224.01
                assert o["class"] in EXPORTED_NAMES
                if row["attr_names"] is None:  # as VinVL's TSV: its attributes, best first
                    assert o["attributes"] == o["attr_scores"] == []
                else:
                    assert o["attributes"] == row["attr_names"][i]
                    np.testing.assert_allclose(o["attr_scores"], row["attr_scores"][i])
    assert json.loads((tmp_path / "out" / "tsv_files" / "v0.json").read_text())[2] == {
        "objects": []}  # the frame with no boxes


def test_stoa_single_split_file(store: Path, tmp_path: Path) -> None:
    export_stoa(str(store), str(tmp_path / "out"), StoaOptions(split="train", frame_json=False))
    out = tmp_path / "out"
    cache = torch.load(out / f"object_attr_train_{K}.pth", weights_only=True)
    assert len(cache) == 7 and not (out / "tsv_files").exists()
    assert not list(out.glob(f"object_attr_{K}_*"))


def stoa_reading(frames: list[dict], label_to_idx: dict[str, int], k: int) -> dict:
    """What STOA-VLP's ``object_loader_confident`` makes of one video's frame list, as its
    code reads (written here from that reading, in plain Python on the JSON values): per
    frame, in file order, a class's first box is kept unless it overlaps a kept box at IoU
    >= 0.5 (a class's later boxes never are), up to 2k; the 2k most confident, then the k
    largest; -1 / class 0 padding; conf_set summed per class id in order of appearance."""
    def iou(a: list[float], b: list[float]) -> float:
        w = min(a[2], b[2]) - max(a[0], b[0])
        h = min(a[3], b[3]) - max(a[1], b[1])
        if w < 0 or h < 0:
            return 0.0
        inter = w * h
        return inter / float((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1])
                             - inter)

    objects, classes, conf_set, samples = [], [], {}, []
    for frame in frames:
        kept, seen = [], set()
        for obj in frame["objects"]:
            if obj["class"] in seen:
                continue
            if any(iou(obj["rect"], o["rect"]) >= 0.5 for o in kept):
                continue
            seen.add(obj["class"])
            kept.append(obj)
            if len(kept) == 2 * k:
                break
        kept = sorted(kept, key=lambda o: o["conf"], reverse=True)[: 2 * k]
        kept = sorted(kept, key=lambda o: (o["rect"][2] - o["rect"][0])
                      * (o["rect"][3] - o["rect"][1]), reverse=True)[:k]
        for o in kept:
            cls = label_to_idx[o["class"]]
            conf_set[cls] = conf_set.get(cls, 0) + o["conf"]
            attrs = []  # the loader's attribute selection: in file order, above 0.2, two
            for a, c in zip(o["attributes"], o["attr_scores"], strict=True):
                if c > 0.2:
                    attrs.append((a, c))
                if len(attrs) > 1:
                    break
            r = o["rect"]
            samples.append((o["class"], o["conf"], (r[2] - r[0]) * (r[3] - r[1]), attrs))
        objects.append([o["rect"] for o in kept] + [[-1] * 4] * (k - len(kept)))
        classes.append([label_to_idx[o["class"]] for o in kept] + [0] * (k - len(kept)))
    return {"objects": torch.tensor(objects, dtype=torch.float),
            "obj_cls": torch.tensor(classes, dtype=torch.int64), "conf_set": conf_set,
            "attr_sentence": stoa_attr_sent(samples)}


def stoa_attr_sent(samples: list[tuple], limit: int = 10) -> str:
    """STOA-VLP's ``get_attr_sent`` as its code reads, on (class, conf, size, attrs)."""
    occurrences, top_conf, top_size = {}, {}, {}
    for cls, conf, size, _ in samples:
        top_conf[cls] = max(top_conf.get(cls, 0), round(conf * 10))
        top_size[cls] = max(top_size.get(cls, 0), size)
        occurrences[cls] = occurrences.get(cls, 0) + 1
    ranked = [(c, n, top_conf[c], top_size[c]) for c, n in occurrences.items()]
    if limit * 3 < len(ranked):
        ranked = sorted(ranked, key=lambda x: (x[1], x[2], x[3]), reverse=True)[: limit * 3]
    if limit * 2 < len(ranked):
        ranked = sorted(ranked, key=lambda x: (x[2], x[3], x[1]), reverse=True)[: limit * 2]
    chosen = [c for c, *_ in sorted(ranked, key=lambda x: (x[3], x[2], x[1]),
                                    reverse=True)[:limit]]
    per_class = {c: {} for c in chosen}
    for cls, _, _, attrs in samples:
        if cls in per_class:
            for a, c in attrs:
                n, best = per_class[cls].get(a, (0, 0))
                per_class[cls][a] = (n + 1, max(best, c))
    colours = {"white", "black", "red", "green"}  # the fake store's colour attributes
    out = []
    for cls in chosen:
        picked, used = [], set()
        for a, _ in sorted(per_class[cls].items(), key=lambda x: (x[1][0], x[1][1]),
                           reverse=True):
            if len(picked) > 1:
                break
            kind = "colour" if a in colours else None
            if a not in picked and (kind is None or kind not in used):
                picked.append(a)
                if kind:
                    used.add(kind)
        out.append(" ".join([*picked, cls]))
    return ", ".join(out)


def test_stoa_cache_is_what_stoas_loader_builds_from_the_frame_lists(store: Path,
                                                                     tmp_path: Path) -> None:
    export_stoa(str(store), str(tmp_path / "out"), StoaOptions(shards=1))
    out = tmp_path / "out"
    cache = load_shards(out, 1)
    label_to_idx = json.loads((out / "labelmap.json").read_text())["label_to_idx"]
    second_boxes = with_attributes = 0
    for vid, entry in cache.items():
        frames = json.loads((out / "tsv_files" / f"{vid}.json").read_text())
        want = stoa_reading(frames, label_to_idx, K)
        assert torch.equal(entry["objects"], want["objects"])
        assert torch.equal(entry["obj_cls"], want["obj_cls"])
        assert list(entry["conf_set"].items()) == list(want["conf_set"].items())
        assert entry["attr_sentence"] == want["attr_sentence"]
        with_attributes += any(" " in p for p in want["attr_sentence"].split(", "))
        for frame in frames:
            names = [o["class"] for o in frame["objects"]]
            second_boxes += len(names) - len(set(names))
    assert second_boxes > 10  # the store has many same-class boxes: the rule is exercised
    assert with_attributes >= 3  # VinVL-like videos' sentences name attributes
    # the repeated "N/A" of the label map comes back as two classes
    assert (label_to_idx["N/A"], label_to_idx["N/A_10"]) == (6, 10)


def test_stoa_pos_file(store: Path, tmp_path: Path) -> None:
    """Read as dataloader_webvid.py does: entry i of postagging_ids_<K>_new.pth belongs to
    caption i of the json_path list; entry[1] gets "PAD" added at both ends, so it holds one
    tag per CLIP token of the caption (start/end of text excluded)."""
    report = export_stoa(str(store), str(tmp_path / "out"), StoaOptions(shards=1))
    out = tmp_path / "out"
    pos = torch.load(out / "webvidpos" / f"postagging_ids_{K}_new.pth", weights_only=True)
    captions = json.loads((out / "frozen_train_labels.json").read_text())
    texts = [r for r in read_table(store, "texts").to_pylist() if r["source"] == "caption"]
    with_regions = set(by_video(read_table(store, "regions")))
    want = [r for r in texts if r["clip_pos"] is not None and r["video_id"] in with_regions]
    assert [c["video_id"] for c in captions] == [r["video_id"] for r in want]
    assert [c["caption"] for c in captions] == [r["text"] for r in want]
    assert len(pos) == len(captions) == 5  # v2 (no clip_pos), v6 (no regions), v7 (no texts)
    tag = {0: "X", 1: "NOUN", 2: "VERB"}
    for entry, caption, row in zip(pos, captions, want, strict=True):
        assert entry[0] == caption["video_id"]
        assert entry[1] == [tag[c] for c in CAPTION_POS[1:-1]]
        assert len(entry[1]) == len(row["clip_ids"]) - 2  # one per token, specials excluded
        padded = np.array(["PAD", *entry[1], "PAD"])
        assert (padded == "NOUN").sum() == 3 and (padded == "VERB").sum() == 1
    assert any("1 captions have no clip_pos" in note for note in report.notes)


def test_stoa_selection_option(store: Path, tmp_path: Path) -> None:
    """Our rule stays an option: same-class boxes apart at IoU < 0.2 come back as slots."""
    export_stoa(str(store), str(tmp_path / "out"),
                StoaOptions(shards=1, selection="same_class_iou", frame_json=False))
    cache = load_shards(tmp_path / "out", 1)
    kept = [[c for c in row if c] for e in cache.values() for row in e["obj_cls"].tolist()]
    repeats = sum(len(row) - len(set(row)) for row in kept)
    assert repeats > 0
    with pytest.raises(Exception, match="expected stoa or same_class_iou"):
        export_stoa(str(store), str(tmp_path / "o2"), StoaOptions(selection="nope"))
