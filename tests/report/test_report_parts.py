"""The report's parts on small hand-made inputs (fast: no store, no model)."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from vlprep.report.checks import check_store
from vlprep.report.frames import frame_sources
from vlprep.report.health import (
    NORM_EDGES,
    ColumnHealth,
    Health,
    find_duplicates,
    vector_columns,
    vectors_of,
)
from vlprep.report.summary import Summary, stage_flow
from vlprep.report.texts import TextMarker


def test_column_health_counts_nan_inf_zero_and_bins_norms() -> None:
    stats = ColumnHealth("t", "c", 4)
    x = np.array([[3, 4, 0, 0], [np.nan, 1, 1, 1], [np.inf, 0, 0, 0], [0, 0, 0, 0],
                  [0.6, 0.8, 0, 0]], np.float16)
    stats.add(x[:2])
    stats.add(x[2:])  # streamed in two batches: the same totals
    assert (stats.vectors, stats.nan, stats.inf, stats.zero) == (5, 1, 1, 1)
    assert (stats.norm_min, stats.norm_max) == (0.0, 5.0)
    assert stats.counts.sum() == 2 and stats.below == 1  # zero is under the first edge
    assert NORM_EDGES[np.flatnonzero(stats.counts)[-1]] <= 5.0 < \
        NORM_EDGES[np.flatnonzero(stats.counts)[-1] + 1]
    assert abs(stats.norm_mean - 2.0) < 1e-3  # (5 + 0 + 1) / 3 finite vectors


def test_vector_columns_are_embeddings_not_boxes() -> None:
    schema = pa.schema([("embedding", pa.list_(pa.float16(), 512)),
                        ("features", pa.list_(pa.list_(pa.float16(), 1024))),
                        ("boxes", pa.list_(pa.list_(pa.float32(), 4))),
                        ("frame_index", pa.int32())])
    assert vector_columns(schema) == {"embedding": (512, False), "features": (1024, True)}
    column = pa.array([[[1.0] * 16, [2.0] * 16], None, [[3.0] * 16]],
                      pa.list_(pa.list_(pa.float32(), 16)))
    assert vectors_of(column, 16, True)[:, 0].tolist() == [1.0, 2.0, 3.0]


def test_duplicates_exact_near_and_distinct() -> None:
    rng = np.random.default_rng(0)
    base = rng.normal(size=(5, 64)).astype(np.float32)
    near = base[1] + 0.01 * rng.normal(size=64).astype(np.float32)
    x = np.vstack([base, base[0], near])
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = ["a", "b", "c", "d", "e", "a-copy", "b-near"]
    dup = find_duplicates(ids, x)
    assert (dup.exact_pairs, dup.near_pairs) == (1, 1)
    assert sorted(sorted(v for v, _ in g) for g in dup.groups) == [["a", "a-copy"],
                                                                   ["b", "b-near"]]


RECIPE = {"stages": [
    {"name": "probe", "kind": "probe", "options": {}},
    {"name": "sample", "kind": "sample", "options": {"key": "frames", "sampler": "uniform",
                                                     "num_frames": 8}},
    {"name": "clip", "kind": "clip", "options": {"frames": "frames"}},
    {"name": "entities", "kind": "entities", "options": {}, "aggregate": True},
    {"name": "prompter_frames", "kind": "sample", "options": {"sampler": "uniform",
                                                              "num_frames": 4}},
    {"name": "prompter", "kind": "prompter", "options": {"num_crops": 4}},
]}


def test_each_model_stage_reads_the_last_sampler_of_its_key_before_it() -> None:
    sources = frame_sources(RECIPE)
    assert sources["clip"].sample_name == "sample"
    assert sources["prompter"].sample_name == "prompter_frames"


def test_stage_flow_over_two_passes_and_a_partial_one() -> None:
    failed = {"v1": ["probe"], "v2": ["clip"], "v5": ["prompter"]}
    partition_of = {"v1": 0, "v2": 0, "v5": 1}
    flow = stage_flow(RECIPE, {0: {0, 1}, 1: {1}}, [4, 4], partition_of, failed)
    got = {f.name: (f.entered, f.failed) for f in flow if not f.aggregate}
    assert got == {"probe": (8, 1), "sample": (7, 0), "clip": (7, 1),
                   "prompter_frames": (4, 0), "prompter": (4, 1)}


def _summary(flow) -> Summary:
    return Summary("s", 8, 8, 2, 2, {}, flow, [], {}, [], RECIPE, [])


def test_check_rules_name_table_and_column() -> None:
    flow = stage_flow(RECIPE, {0: {0}, 1: {0}}, [3], {}, {})
    bad = ColumnHealth("clip_frames", "embedding", 512, vectors=24, nan=2, zero=1)
    health = Health([bad], None, [], 0, 0, 0, None,
                    {"videos": 3, "clip_frames": 23, "soft_labels": 12})
    failures = [str(f) for f in check_store(_summary(flow), health)]
    assert failures == ["clip_frames.embedding: 2 of 24 vectors are NaN",
                        "clip_frames.embedding: 1 of 24 vectors are all-zero",
                        "clip_frames: 23 rows, but the 3 videos that passed stage clip need "
                        "at least 24"]
    good = Health([ColumnHealth("clip_frames", "embedding", 512, vectors=24)], None, [], 0, 0,
                  0, None, {"videos": 3, "clip_frames": 24, "soft_labels": 12})
    assert check_store(_summary(flow), good) == []


def test_texts_marked_from_lemmas_without_a_tokenizer() -> None:
    marker = TextMarker({"stages": []})
    row = {"text": "A man slicing tomatoes in the kitchen.", "nouns": ["man", "tomato",
           "kitchen"], "verbs": ["slice"], "clip_ids": None, "clip_pos": None}
    out = marker.mark(row)
    assert out["how"].startswith("lemmas")
    assert out["html"] == ('A <mark class="noun">man</mark> <mark class="verb">slicing</mark> '
                           '<mark class="noun">tomatoes</mark> in the '
                           '<mark class="noun">kitchen</mark>.')
