"""One bad video costs only its own rows."""

import pyarrow as pa

from vlprep.pipeline.guard import run_guarded
from vlprep.stages.base import OUTPUTS, Resources, Stage, StageOptions, VideoError, emit
from vlprep.stages.record import ERROR, reason_of


class Picky(Stage):
    """Emits a row per video; fails on video ids starting with 'bad' (after emitting)."""

    kind = "picky"

    def __call__(self, batch):
        for record in batch:
            emit(record, "texts", pa.table({"video_id": [record["video_id"]], "text": ["x"]}))
            record["seen"] = True
        for record in batch:
            if record["video_id"].startswith("bad"):
                raise VideoError(f"cannot read {record['video_id']}")
        return batch


def _records(*ids):
    return [{"video_id": i, "partition": 0, "path": f"/{i}"} for i in ids]


def test_batch_failure_is_retried_per_video():
    records = _records("a", "bad1", "b")
    run_guarded(Picky(StageOptions(), Resources()), records)
    ok = [r for r in records if ERROR not in r]
    assert [r["video_id"] for r in ok] == ["a", "b"]
    for r in ok:  # good videos emitted exactly once despite the failed batch attempt
        assert r[OUTPUTS]["texts"].num_rows == 1 and r["seen"]
    bad = records[1]
    assert bad[ERROR] == {"stage": "picky", "error": "cannot read bad1", "code": "unreadable"}
    assert "texts" not in bad[OUTPUTS] and "seen" not in bad
    assert bad[OUTPUTS]["errors"].to_pylist() == [
        {"video_id": "bad1", "stage": "picky", "error": "cannot read bad1", "path": "/bad1"}]


def test_failed_records_skip_later_stages():
    records = _records("bad", "c")
    stage = Picky(StageOptions(), Resources(), name="first")
    run_guarded(stage, records)
    run_guarded(Picky(StageOptions(), Resources(), name="second"), records)
    assert records[0][ERROR]["stage"] == "first"
    assert records[0][OUTPUTS]["errors"].num_rows == 1
    assert records[1][OUTPUTS]["texts"].num_rows == 2


def test_reason_is_one_readable_line():
    assert reason_of(VideoError("empty file\n(0 bytes)")) == "empty file (0 bytes)"
    assert reason_of(KeyError("frames")) == "KeyError: 'frames'"
    assert len(reason_of(ValueError("x" * 5000))) == 500
