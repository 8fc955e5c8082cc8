"""The training reader: committed files only, joins by video within a partition, row groups
dealt across workers and ranks, a fixed held-out split, a shuffle buffer."""

from __future__ import annotations

import random
from collections import Counter

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from torch.utils.data import DataLoader
from train_fake_store import write_store

from vlprep.store import StoreError
from vlprep.train.data import (
    ReadSpec,
    StoreDataset,
    epoch_units,
    in_eval_split,
    iter_videos,
    shuffled,
)
from vlprep.train.store_reader import StoreReader

SPEC = ReadSpec("clip_frames", {"clip_frames": ["sample_rank", "embedding"],
                                "texts": ["segment", "source"]},
                frozenset({"clip_frames", "texts"}))


def _ids(rows, rng):
    yield (rows.video_id, rows.tables["clip_frames"].num_rows, rows.tables["texts"].num_rows)


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    # ~2 KB per video of clip_frames and files of 4 KB: many files and row groups, and videos
    # whose frames straddle row-group boundaries
    return write_store(tmp_path_factory.mktemp("s") / "store", 40, partition_size=16,
                       target_file_bytes=4096, frames=5)


def test_units_are_row_groups_of_committed_files(store):
    reader = StoreReader(str(store))
    units = reader.units("clip_frames")
    assert len({u.partition for u in units}) == 3
    assert len(units) > 6  # several row groups per partition
    assert sum(u.rows for u in units) == 40 * 5
    assert reader.count_rows("clip_frames") == 200


def test_every_video_once_with_all_its_rows(store):
    reader = StoreReader(str(store))
    units = epoch_units(reader, "clip_frames", seed=0, epoch=0, shuffle=True)
    seen = [(v.video_id, v.tables["clip_frames"].num_rows, v.tables["texts"].num_rows)
            for v in iter_videos(reader, SPEC, units, lambda _: True)]
    assert sorted(seen) == [(f"v{i:05d}", 5, 3) for i in range(40)]


def test_join_keeps_row_order_and_projection(store):
    reader = StoreReader(str(store))
    units = epoch_units(reader, "clip_frames", 0, 0, shuffle=False)
    first = next(iter_videos(reader, SPEC, units, lambda _: True))
    assert first.tables["clip_frames"].column_names == ["video_id", "sample_rank", "embedding"]
    assert first.tables["clip_frames"].column("sample_rank").to_pylist() == [0, 1, 2, 3, 4]
    assert first.tables["texts"].column("segment").to_pylist() == [0, 1, 2]


def test_uncommitted_files_are_invisible(store, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    orphan = pq.read_table(next((copy / "clip_frames").glob("*.parquet")))
    pq.write_table(orphan, copy / "clip_frames" / "part-000099-000.parquet")
    reader = StoreReader(str(copy))
    assert reader.count_rows("clip_frames") == 200


def test_shards_split_the_videos(store):
    def videos(rank, world, workers):
        ds = StoreDataset(str(store), SPEC, _ids, split="all", rank=rank, world_size=world,
                          shuffle_buffer=8)
        loader = DataLoader(ds, batch_size=None, num_workers=workers,
                            collate_fn=lambda x: x)
        return [v[0] for v in loader]

    whole = videos(0, 1, 0)
    assert sorted(whole) == [f"v{i:05d}" for i in range(40)]
    ranks = [videos(r, 2, 0) for r in range(2)]
    assert sorted(ranks[0] + ranks[1]) == sorted(whole) and ranks[0] and ranks[1]
    assert not set(ranks[0]) & set(ranks[1])
    with_workers = videos(0, 1, 2)
    assert sorted(with_workers) == sorted(whole)


def test_epochs_reorder_and_are_reproducible(store):
    def order(epoch):
        ds = StoreDataset(str(store), SPEC, _ids, split="all", seed=3)
        ds.set_epoch(epoch)
        return [v[0] for v in ds]

    assert order(0) == order(0)
    assert order(0) != order(1)
    assert sorted(order(0)) == sorted(order(1))


def test_split_is_fixed_by_id_and_fraction(store):
    ids = [f"v{i:05d}" for i in range(2000)]
    held = [v for v in ids if in_eval_split(v, 0.2)]
    assert 300 < len(held) < 500
    assert held == [v for v in ids if in_eval_split(v, 0.2)]
    assert not any(in_eval_split(v, 0.0) for v in ids)
    train = {v[0] for v in StoreDataset(str(store), SPEC, _ids, split="train")}
    evals = {v[0] for v in StoreDataset(str(store), SPEC, _ids, split="eval", shuffle=False)}
    assert not train & evals and len(train | evals) == 40
    assert evals == {v for v in (f"v{i:05d}" for i in range(40)) if in_eval_split(v, 0.2)}


def test_videos_without_a_required_table_are_skipped(tmp_path):
    store = write_store(tmp_path / "s", 6, tables=("clip_frames",))
    reader = StoreReader(str(store))
    units = epoch_units(reader, "clip_frames", 0, 0, shuffle=False)
    spec = ReadSpec("clip_frames", {"clip_frames": ["embedding"]}, frozenset({"clip_frames"}))
    assert len(list(iter_videos(reader, spec, units, lambda _: True))) == 6
    assert list(iter_videos(reader, SPEC, units, lambda _: True)) == []
    with pytest.raises(StoreError, match="no texts table"):
        reader.require("clip_frames", "texts")


def test_shuffle_buffer_is_a_permutation():
    items = list(range(100))
    out = list(shuffled(items, 16, random.Random(0)))
    assert sorted(out) == items and out != items
    assert Counter(out) == Counter(items)
    # a bounded buffer: the first item out comes from the first 17 in
    assert out[0] < 17


def test_missing_store_is_one_line(tmp_path):
    with pytest.raises(StoreError, match="no such directory"):
        StoreReader(str(tmp_path / "nope"))


def test_group_by_video_keeps_order():
    from vlprep.train.store_reader import group_by_video

    t = pa.table({"video_id": ["b", "a", "b", "a"], "x": [1, 2, 3, 4]})
    groups = group_by_video(t)
    assert groups["a"].column("x").to_pylist() == [2, 4]
    assert groups["b"].column("x").to_pylist() == [1, 3]
