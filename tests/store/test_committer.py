"""Workers write, the driver commits: batches of a partition become one committed unit, small
files are compacted, and nothing a dead attempt wrote is ever committed. No Ray."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from vlprep.schemas import ERRORS
from vlprep.store import COMMITS, TMP, CommittedStore, Store
from vlprep.store.committer import Committer, plan_files
from vlprep.store.writer import BatchWriter, WrittenFile


def _rows(ids: list[str]) -> pa.Table:
    return pa.table({"video_id": ids, "stage": ["probe"] * len(ids), "error": ["bad"] * len(ids),
                     "path": [f"/v/{i}.mp4" for i in ids]}, schema=ERRORS)


def _files(store: Store, table: str) -> list[str]:
    return sorted(p.rsplit("/", 1)[1] for p in store.table_files(table))


def test_batches_of_a_partition_commit_once_whole_in_video_order(tmp_path):
    store = Store(str(tmp_path / "s"))
    writer = BatchWriter(store.uri, 2**20)
    committer = Committer(store, writer, {0: 4, 1: 1})
    second = writer.write([(0, "errors", _rows(["d", "c"]))])  # batches arrive out of order
    assert committer.add(0, ["c", "d"], second) == []
    assert store.committed() == set() and store.table_files("errors") == []  # not yet visible
    assert committer.add(1, ["e"], writer.write([(1, "errors", _rows(["e"]))]))[0].unit == \
        "part-000001"
    [commit] = committer.add(0, ["a", "b"], writer.write([(0, "errors", _rows(["b", "a"]))]))
    assert commit.unit == "part-000000" and commit.videos == 4 and commit.rows == {"errors": 4}
    # two small batch files became one file (compacted), rows in video order
    assert commit.files == {"errors": ["part-000000-000.parquet"]}
    assert _files(store, "errors") == ["part-000000-000.parquet", "part-000001-000.parquet"]
    data = CommittedStore(store).partition_table("000000", "errors", ["video_id"])
    assert data.column("video_id").to_pylist() == ["a", "b", "c", "d"]
    assert committer.incomplete == {}
    store.clear_writes()
    assert not (tmp_path / "s" / TMP / "w").exists()


def test_a_dead_attempts_half_file_is_never_committed(tmp_path):
    """An attempt died while writing: its file (no footer) lies in _tmp; the retry writes its
    own files in a new folder, and only those are reported, committed and read."""
    store = Store(str(tmp_path / "s"))
    writer = BatchWriter(store.uri, 2**20)
    dead = writer.write([(0, "errors", _rows(["a", "b"]))])[0]
    with store.fs.open_output_stream(dead.path) as f:  # truncate it: a half-written file
        f.write(b"PAR1" + b"\0" * 50)
    retry = writer.write([(0, "errors", _rows(["a", "b"]))])
    assert retry[0].path != dead.path
    [commit] = Committer(store, writer, {0: 2}).add(0, ["a", "b"], retry)
    record = json.loads((tmp_path / "s" / COMMITS / "part-000000.json").read_text())
    assert record["files"] == {"errors": ["part-000000-000.parquet"]}
    assert store.is_file(dead.path)  # still there, never moved: it is no one's data
    table = pads.dataset(store.path("errors"), format="parquet").to_table()
    assert sorted(table.column("video_id").to_pylist()) == ["a", "b"]
    assert commit.rows == {"errors": 2}
    store.recover()  # the next run's start, or clear_writes at a pass's end, removes it
    assert not store.is_file(dead.path)


def test_a_batch_delivered_twice_is_kept_once_and_overlaps_are_refused(tmp_path):
    store = Store(str(tmp_path / "s"))
    writer = BatchWriter(store.uri, 2**20)
    committer = Committer(store, writer, {0: 3})
    committer.add(0, ["a", "b"], writer.write([(0, "errors", _rows(["a", "b"]))]))
    committer.add(0, ["a", "b"], writer.write([(0, "errors", _rows(["a", "b"]))]))
    with pytest.raises(RuntimeError, match="arrived twice"):
        committer.add(0, ["b", "c"], writer.write([(0, "errors", _rows(["b", "c"]))]))
    [commit] = committer.add(0, ["c"], writer.write([(0, "errors", _rows(["c"]))]))
    assert commit.rows == {"errors": 3}


def test_large_files_keep_their_size_and_small_ones_merge_up_to_the_target(tmp_path):
    def f(first: str, nbytes: int) -> WrittenFile:
        return WrittenFile("t", f"/x/{first}", 1, nbytes, nbytes, first, 0)

    files = [f("a", 40), f("b", 40), f("c", 600), f("d", 30), f("e", 30), f("g", 30)]
    groups = plan_files(list(reversed(files)), 100)
    assert [[x.first for x in g] for g in groups] == [["a", "b"], ["c"], ["d", "e", "g"]]


def test_files_split_by_target_bytes_and_compaction_keeps_the_split(tmp_path):
    store = Store(str(tmp_path / "s"))
    ids = [f"v{i:04d}" for i in range(400)]
    target = _rows(ids).nbytes // 4
    writer = BatchWriter(store.uri, target)
    committer = Committer(store, writer, {0: 400})
    for start in range(0, 400, 10):  # forty small batch files
        chunk = ids[start:start + 10]
        committer.add(0, chunk, writer.write([(0, "errors", _rows(chunk))]))
    assert store.committed() == {0}
    names = _files(store, "errors")
    assert 4 <= len(names) <= 6, names  # about the target each, not forty tiny ones
    back = CommittedStore(store).read("errors", ["video_id"])
    assert back.column("video_id").to_pylist() == ids
