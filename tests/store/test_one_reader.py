"""One reader of committed data: inspect, export, train, the entities aggregate and the
later-pass error filter see a store with uncommitted leftovers exactly as without them."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa

from vlprep.export.source import StoreSource
from vlprep.pipeline.inspect import inspect_store, table_recipes
from vlprep.pipeline.runner import _failed_videos
from vlprep.schemas import ERRORS, TABLES, with_vector_dims
from vlprep.stages.entities import read_entities
from vlprep.store import INDEX, INPUTS, Store
from vlprep.store.parquet import write_parquet
from vlprep.train.store_reader import StoreReader


def _frames(ids: list[str], dim: int = 4) -> pa.Table:
    schema = with_vector_dims(TABLES["clip_frames"], embedding=dim)
    rows = [{"video_id": v, "frame_index": k, "time": float(k), "sample_rank": k,
             "embedding": np.full(dim, k, np.float16).tolist()} for v in ids for k in range(3)]
    return pa.Table.from_pylist(rows, schema=schema)


def _tables(ids: list[str]) -> dict[str, pa.Table]:
    texts = pa.Table.from_pylist([{"video_id": v, "segment": 0, "source": "caption",
                                   "text": f"a dog in {v}"} for v in ids], schema=TABLES["texts"])
    return {"videos": pa.Table.from_pylist([{"video_id": v} for v in ids],
                                           schema=TABLES["videos"]),
            "clip_frames": _frames(ids), "texts": texts,
            "errors": pa.table({"video_id": ids[-1:], "stage": ["clip"], "error": ["bad"],
                                "path": [None]}, schema=ERRORS)}


def _everything(uri: str) -> dict:
    """What each reader makes of the store."""
    source = StoreSource(uri)
    reader = StoreReader(uri)
    summary = inspect_store(uri)
    return {
        "inspect": summary,
        "recipes": table_recipes(uri),
        "export": (sorted(source.tables()), source.count_videos("clip_frames"),
                   [(v, rows.num_rows, other.num_rows if other is not None else None)
                    for v, rows, other in source.videos("clip_frames", ["time"],
                                                        with_=("texts", ["text"]))]),
        "train": (sorted(reader.tables()), reader.count_rows("clip_frames"),
                  [(u.partition, u.rows) for u in reader.units("clip_frames")],
                  reader.read_table("entities", ["lemma"]).to_pylist()),
        "entities": read_entities(uri),
        "failed": sorted(_failed_videos(Store(uri))),
    }


def test_uncommitted_leftovers_read_as_absent_through_every_reader(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.write_partition(0, 2, _tables(["a", "b"]), 2**20)
    store.write_partition(1, 2, _tables(["c", "d"]), 2**20)
    entities = pa.Table.from_pylist([{"video_id": "corpus", "rank": 0, "lemma": "dog",
                                      "count": 4}], schema=TABLES["entities"])
    store.write_unit("agg-entities", 0, {"entities": entities}, 2**20)
    store.write_atomic(store.path(INPUTS, INDEX), json.dumps(
        {"sizes": [2, 2, 2], "videos": 6}).encode())
    before = _everything(store.uri)
    assert before["failed"] == ["b", "d"] and before["entities"] == ["dog"]
    assert before["inspect"]["tables"]["clip_frames"]["rows"] == 12

    # a crash's leftovers: a third partition's files renamed into place, but no commit record,
    # a second entities file, and a later pass's file for a committed partition
    for table, name, rows in [("clip_frames", "part-000002-000.parquet", _frames(["e", "f"])),
                              ("errors", "part-000002-000.parquet", _tables(["e"])["errors"]),
                              ("videos", "part-000002-000.parquet", _tables(["e"])["videos"]),
                              ("entities", "agg-entities-001.parquet", entities),
                              ("texts", "ph1-part-000000-000.parquet", _tables(["a"])["texts"])]:
        write_parquet(store.path(table, name), rows, 2**20, None, store.fs)
    assert _everything(store.uri) == before
