"""Aggregate stages: a Ray aggregation over a table, then a further pass that reads it."""

from __future__ import annotations

import json
from collections import Counter

import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from vlprep.jobs.config import Job, JobFile, StageSpec
from vlprep.pipeline.runner import plan_passes, run_job
from vlprep.stages.base import AggregateStage, Resources, Stage, VideoError, emit
from vlprep.stages.texts import TextsStage
from vlprep.store import open_filesystem

WORDS = pa.schema([("video_id", pa.string()), ("word", pa.string()), ("count", pa.int64())])
HITS = pa.schema([("video_id", pa.string()), ("hits", pa.int64())])


class WordCount(AggregateStage):
    kind = "test_wordcount"
    source, columns, keys, tables = "texts", ("text",), ("word",), ("words",)

    def partial(self, batch: pa.Table) -> pa.Table:
        counts = Counter(w for t in batch.column("text").to_pylist() for w in t.lower().split())
        return pa.table({"word": list(counts), "count": list(counts.values())},
                        schema=pa.schema([("word", pa.string()), ("count", pa.int64())]))

    def finalize(self, totals: pa.Table) -> dict[str, pa.Table]:
        rows = sorted(totals.to_pylist(), key=lambda r: (-r["count"], r["word"]))
        return {"words": pa.Table.from_pylist(
            [{"video_id": "", **r} for r in rows], schema=WORDS)}


class Hits(Stage):
    """Second pass: how many of the corpus' words each video's caption has."""

    kind = "test_hits"

    def setup(self) -> None:
        fs, root = open_filesystem(self.store)
        words = pads.dataset(f"{root}/words", filesystem=fs).to_table()
        self.vocab = set(words.column("word").to_pylist())

    def process(self, record) -> None:
        n = sum(w in self.vocab for w in (record.get("caption") or "").lower().split())
        emit(record, "hits", pa.table({"video_id": [record["video_id"]], "hits": [n]},
                                      schema=HITS))


class Picky(Stage):
    """Fails videos whose caption mentions a cube, as a broken file would fail decoding."""

    kind = "test_picky"

    def process(self, record) -> None:
        if "cube" in (record.get("caption") or ""):
            raise VideoError("no cubes")


def _spec(cls, name, store, **resources):
    return StageSpec(name, cls, cls.Options(), Resources(**resources), store)


def _caption_job(tmp_path, captions: dict[str, str], specs: list[StageSpec]) -> Job:
    """A job over a manifest of captions only (no stage here opens the videos), in
    partitions of two, storing under tmp_path/store."""
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps({"video_id": k, "path": f"/{k}.mp4", "caption": v})
                                + "\n" for k, v in captions.items()))
    file = JobFile(name="t", manifest=str(manifest), store=str(tmp_path / "store"),
                   partition_size=2, stages={"texts": {}})
    return Job(file, specs)


def test_plan_passes_cuts_after_aggregates():
    specs = [_spec(TextsStage, "texts", None), _spec(WordCount, "wc", None),
             _spec(Hits, "hits", None)]
    passes = plan_passes(specs)
    assert [[s.name for s in p.stages] for p in passes] == [["texts"], ["hits"]]
    assert passes[0].aggregate.name == "wc" and passes[1].aggregate is None


@pytest.fixture(scope="module")
def ray_local():
    import os

    import ray

    here = os.path.dirname(__file__)  # workers import this module's stage classes
    ray.init(num_cpus=2, include_dashboard=False,
             runtime_env={"env_vars": {"PYTHONPATH": here + os.pathsep + os.environ.get(
                 "PYTHONPATH", "")}})
    yield
    ray.shutdown()


def test_aggregate_then_second_pass(tmp_path, ray_local):
    captions = {"a": "red ball red", "b": "blue ball", "c": "green cube"}
    store = str(tmp_path / "store")
    job = _caption_job(tmp_path, captions, [
        _spec(Picky, "picky", store), _spec(TextsStage, "texts", store),
        _spec(WordCount, "wc", store, batch_size=1), _spec(Hits, "hits", store)])
    result = run_job(job, quiet=True)
    words = pads.dataset(f"{store}/words").to_table().to_pylist()
    assert [(w["word"], w["count"]) for w in words] == [("ball", 2), ("red", 2), ("blue", 1)]
    hits = {r["video_id"]: r["hits"] for r in pads.dataset(f"{store}/hits").to_table().to_pylist()}
    assert hits == {"a": 3, "b": 2}  # the video that failed in pass 1 is not tried again
    errors = pads.dataset(f"{store}/errors").to_table().to_pylist()
    assert [(e["video_id"], e["stage"], e["error"]) for e in errors] == [("c", "picky", "no cubes")]
    assert result.counts.rows["words"] == 3 and result.counts.videos == 3
    assert result.counts.failed == 1 and result.counts.errors_by_stage == {"picky": 1}
    files = sorted(p.name for p in (tmp_path / "store" / "hits").iterdir())
    assert files == ["ph1-part-000000-000.parquet"]  # partition 1 held only the failed video
    commits = sorted(p.name for p in (tmp_path / "store" / "_commits").iterdir())
    assert "ph1-part-000001.json" in commits
    again = run_job(job, quiet=True)  # everything committed: nothing is redone
    assert again.counts.videos == 0 and not again.counts.rows
    assert len(pads.dataset(f"{store}/words").to_table()) == 3


def test_large_sources_aggregate_in_ray_tasks_with_the_same_result(tmp_path, ray_local,
                                                                   monkeypatch):
    from vlprep.pipeline import executors

    monkeypatch.setattr(executors, "AGGREGATE_IN_DRIVER_BYTES", 0)  # every table is "large"
    captions = {f"v{i}": " ".join(["red", "ball"][: 1 + i % 2]) for i in range(5)}
    store = str(tmp_path / "store")
    job = _caption_job(tmp_path, captions, [_spec(TextsStage, "texts", store),
                                            _spec(WordCount, "wc", store, batch_size=1)])
    run_job(job, quiet=True)
    words = pads.dataset(f"{store}/words").to_table().to_pylist()
    assert [(w["word"], w["count"]) for w in words] == [("red", 5), ("ball", 2)]
