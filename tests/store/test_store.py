"""The store's commit protocol: atomic partitions, recovery, file sizing."""

import json

import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from vlprep.schemas import ERRORS, TEXTS
from vlprep.store import COMMITS, TMP, Store


def _videos(ids):
    """Rows for a table (any schema with a video_id will do: here `errors`)."""
    return pa.table({"video_id": ids, "stage": ["probe"] * len(ids),
                     "error": ["bad"] * len(ids), "path": [f"/v/{i}.mp4" for i in ids]},
                    schema=ERRORS)


def test_write_partition_is_committed_and_readable(tmp_path):
    store = Store(str(tmp_path / "s"))
    commit = store.write_partition(3, 2, {"videos": _videos(["a", "b"])}, 2**20)
    assert store.committed() == {3}
    assert commit.files == {"videos": ["part-000003-000.parquet"]}
    table = ds.dataset(store.path("videos")).to_table()
    assert table.column("video_id").to_pylist() == ["a", "b"]
    assert table.schema.metadata[b"vlprep.table"] == b"errors"
    record = json.loads((tmp_path / "s" / COMMITS / "part-000003.json").read_text())
    assert record["rows"] == {"videos": 2} and record["videos"] == 2
    assert not any((tmp_path / "s" / TMP).iterdir())


def test_empty_tables_write_no_files(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.write_partition(0, 1, {"texts": TEXTS.empty_table(), "videos": _videos(["a"])}, 2**20)
    assert store.tables() == ["videos"]


def test_recover_removes_uncommitted_files_and_tmp(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.write_partition(0, 1, {"videos": _videos(["a"])}, 2**20)
    # a crash after a rename but before the commit record: an orphan partition file
    pq.write_table(_videos(["b"]), store.path("videos", "part-000001-000.parquet"))
    (tmp_path / "s" / TMP / "junk").mkdir(parents=True)
    (tmp_path / "s" / "videos" / "README.txt").write_text("a user's note")
    removed = store.recover()
    assert any(p.endswith("part-000001-000.parquet") for p in removed)
    assert sorted(p.name for p in (tmp_path / "s" / "videos").iterdir()) == [
        "README.txt", "part-000000-000.parquet"]
    assert not (tmp_path / "s" / TMP).exists()
    assert ds.dataset(store.table_files("videos")).count_rows() == 1


def test_files_split_by_target_bytes(tmp_path):
    store = Store(str(tmp_path / "s"))
    ids = [f"v{i:04d}" for i in range(1000)]
    table = _videos(ids)
    commit = store.write_partition(0, 1000, {"videos": table}, table.nbytes // 4)
    assert len(commit.files["videos"]) >= 4
    back = ds.dataset(store.path("videos")).to_table()
    assert back.column("video_id").to_pylist() == ids


def test_write_atomic_leaves_no_temporary(tmp_path):
    store = Store(str(tmp_path / "s"))
    store.write_atomic(store.path("x", "y.json"), b"{}")
    assert (tmp_path / "s" / "x" / "y.json").read_bytes() == b"{}"
    assert list((tmp_path / "s" / TMP).iterdir()) == []
