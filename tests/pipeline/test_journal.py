"""A video that kills its worker becomes an errors row; its batch-mates keep their rows."""

from vlprep.pipeline.journal import CRASH_REASON, Journal, run_journaled
from vlprep.stages.base import Resources, Stage, StageOptions
from vlprep.stages.record import ERROR


class Marks(Stage):
    kind = "marks"

    def __call__(self, batch):
        self.calls.append([r["video_id"] for r in batch])
        for record in batch:
            record["done"] = True
        return batch


def _stage():
    stage = Marks(StageOptions(), Resources())
    stage.calls = []
    return stage


def _records(*ids):
    return [{"video_id": i, "partition": 0} for i in ids]


def test_normal_batches_leave_no_journal(tmp_path):
    journal = Journal(str(tmp_path), "marks")
    stage = _stage()
    records = run_journaled(stage, _records("a", "b"), journal)
    assert stage.calls == [["a", "b"]] and all(r["done"] for r in records)
    assert not list((tmp_path / "_tmp" / "inflight" / "marks").glob("*.json"))


def test_after_a_death_the_batch_runs_video_by_video_and_the_culprit_fails(tmp_path):
    journal = Journal(str(tmp_path), "marks")
    journal.begin(["a", "b", "c"])  # an attempt of this batch died...
    journal.begin(["b"], lone=True)  # ...and so did a retry while b was alone in flight
    stage = _stage()
    records = run_journaled(stage, _records("a", "b", "c"), journal)
    assert stage.calls == [["a"], ["c"]]
    assert records[1][ERROR] == {"stage": "marks", "error": CRASH_REASON}
    assert ERROR not in records[0] and ERROR not in records[2]
    assert not list((tmp_path / "_tmp" / "inflight" / "marks").glob("*.json"))


def test_a_lone_video_is_retried_once_then_fails(tmp_path):
    journal = Journal(str(tmp_path), "marks")
    journal.begin(["x"])  # its batch (of one) died once: a transient death is retried
    stage = _stage()
    records = run_journaled(stage, _records("x"), journal)
    assert stage.calls == [["x"]] and ERROR not in records[0]
    journal.begin(["x"])  # died as a batch...
    journal.begin(["x"], lone=True)  # ...and again alone: it kills workers
    stage = _stage()
    records = run_journaled(stage, _records("x"), journal)
    assert stage.calls == [] and records[0][ERROR]["error"] == CRASH_REASON
