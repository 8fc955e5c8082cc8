"""The learnable synthetic corpus: distinct attributes per video, pixels that move the named
way, texts that name them, a built-in manifest and built-in jobs that validate."""

from __future__ import annotations

import json
import random

import av
import numpy as np
import pytest

from vlprep.jobs.builtin_manifests import resolve_manifest
from vlprep.jobs.config import load_job
from vlprep.jobs.manifest import ManifestError
from vlprep.train.synthetic import COLOURS, Item, items, parse_spec, render, texts, write_corpus


def test_items_are_distinct_while_combinations_last():
    first = items(192, seed=0)
    assert len(set(first)) == 192  # every combination once
    assert items(192, seed=0) == first and items(192, seed=1) != first
    assert len(items(200, seed=0)) == 200


def _centroid(frame: np.ndarray, colour: str) -> tuple[float, float]:
    target = np.array(COLOURS[colour])
    mask = np.abs(frame.astype(int) - target).sum(-1) < 60
    ys, xs = np.nonzero(mask)
    return xs.mean(), ys.mean()


@pytest.mark.parametrize("direction, axis, sign", [("left", 0, -1), ("right", 0, 1),
                                                    ("up", 1, -1), ("down", 1, 1)])
def test_shapes_move_the_named_way(direction, axis, sign):
    item = Item("red", "circle", "small", direction)
    frames = render(item, 20, 64, np.random.default_rng(0))
    start, end = _centroid(frames[0], "red"), _centroid(frames[-1], "red")
    assert sign * (end[axis] - start[axis]) > 15  # pixels, along the named axis
    assert abs(end[1 - axis] - start[1 - axis]) < 2  # and not across it


def test_sizes_and_colours_differ_in_pixels():
    rng = np.random.default_rng(0)
    small = render(Item("blue", "square", "small", "up"), 1, 64, rng)[0]
    big = render(Item("blue", "square", "big", "up"), 1, 64, rng)[0]
    blue = np.array(COLOURS["blue"])

    def area(frame):
        return (np.abs(frame.astype(int) - blue).sum(-1) < 60).sum()

    assert area(big) > 2.5 * area(small)


def test_texts_name_every_attribute_and_are_timed():
    item = Item("green", "triangle", "big", "down")
    caption, segments = texts(item, 4.0, random.Random(0))
    for word in ("green", "triangle", "big", "down"):
        assert word in caption and word in " ".join(s["text"] for s in segments)
    assert [(s["start"], s["end"]) for s in segments] == [(0.0, 2.0), (2.0, 4.0)]


def test_write_corpus_writes_decodable_videos_and_a_manifest(tmp_path):
    manifest = write_corpus(tmp_path, count=3, side=32, duration=1.0, fps=8)
    rows = [json.loads(line) for line in manifest.read_text().splitlines()]
    assert [r["video_id"] for r in rows] == ["syn00000", "syn00001", "syn00002"]
    with av.open(str(tmp_path / rows[0]["path"])) as container:
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(frames) == 8 and frames[0].shape == (32, 32, 3)
    assert rows[0]["caption"] and len(rows[0]["segments"]) == 2
    again = write_corpus(tmp_path, count=3, side=32, duration=1.0, fps=8)
    assert again.read_text() == manifest.read_text()  # deterministic


def test_builtin_manifest_and_its_options(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    path = resolve_manifest("builtin:synthetic?count=2&side=32&duration=1&fps=4")
    assert path.endswith("manifest.jsonl") and len(open(path).read().splitlines()) == 2
    assert parse_spec("synthetic") == {}
    for bad, message in [("synthetic?colour=red", "unknown option 'colour'"),
                         ("synthetic?count=x", "not a number"),
                         ("synthetic?count=0", "must be positive")]:
        with pytest.raises(ManifestError, match=message):
            resolve_manifest(f"builtin:{bad}")


@pytest.mark.parametrize("job", ["synthetic", "synthetic-videoclip", "synthetic-alpro",
                                 "synthetic-stoa"])
def test_builtin_synthetic_jobs_validate(job):
    loaded = load_job(job)
    assert loaded.manifest == "builtin:synthetic"
    kinds = [spec.cls.kind for spec in loaded.stages]
    assert kinds[:2] == ["probe", "texts"]
    wanted = {"synthetic-videoclip": {"s3d"}, "synthetic-alpro": {"clip", "prompter"},
              "synthetic-stoa": {"clip", "detect", "trajectories"},
              "synthetic": {"s3d", "clip", "prompter", "detect", "trajectories"}}[job]
    assert wanted <= set(kinds)
