"""Ray Data callables around stages.

Rows travel between stages as (video_id, partition, state): ``state`` is the pickled per-video
record, so stages can hand each other numpy frames and pending table rows without Ray having
to infer a schema for them. Pickle here only carries our own objects between our own workers;
it is never used for weights or user files.
"""

from __future__ import annotations

import pickle
import time
from collections.abc import Iterable

import pyarrow as pa
import pyarrow.parquet as pq

from vlprep.jobs.config import StageSpec
from vlprep.pipeline.journal import Journal, run_journaled
from vlprep.pipeline.report import write_batch
from vlprep.stages.base import Stage
from vlprep.stages.record import Record, charge, failed, failed_earlier
from vlprep.store.writer import BatchWriter, WrittenFile, compact

STATE = pa.schema([
    pa.field("video_id", pa.string()),
    pa.field("partition", pa.int64()),
    pa.field("state", pa.large_binary()),
])


def to_records(batch: pa.Table) -> list[Record]:
    return [pickle.loads(s) for s in batch.column("state").to_pylist()]


def from_records(records: Iterable[Record]) -> pa.Table:
    records = list(records)
    return pa.table({
        "video_id": [r["video_id"] for r in records],
        "partition": [r["partition"] for r in records],
        "state": [pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL) for r in records],
    }, schema=STATE)


def partitions_to_state(batch: pa.Table, store_uri: str,
                        failed: frozenset[str] = frozenset()) -> pa.Table:
    """Partition ids -> the state rows of their videos (the first step of every pass)."""
    from vlprep.pipeline.inputs import INPUT_SCHEMA, input_path
    from vlprep.store import Store

    store = Store(store_uri)
    parts = [pq.read_table(input_path(store, pid), filesystem=store.fs, schema=INPUT_SCHEMA)
             for pid in batch.column("partition").to_pylist()]
    return manifest_to_state(pa.concat_tables(parts) if parts else INPUT_SCHEMA.empty_table(),
                             failed)


def manifest_to_state(batch: pa.Table, failed: frozenset[str] = frozenset()) -> pa.Table:
    """Input partition rows -> state rows. Videos in `failed` already have their errors row
    from an earlier pass: later stages skip them, and they write nothing again."""
    records = batch.to_pylist()
    for record in records:
        if record["video_id"] in failed:
            failed_earlier(record)
    return from_records(records)


def journal_of(spec: StageSpec) -> Journal | None:
    return Journal(spec.store, spec.name) if spec.store else None


def run_timed(stage: Stage, records: list[Record], journal: Journal | None,
              drop: tuple[str, ...] = ()) -> list[Record]:
    """Run the stage (guarded, journaled) and charge each live video its share of the
    batch's seconds; then drop the record keys that no later stage reads."""
    live = [r for r in records if not failed(r)]
    started = time.perf_counter()
    run_journaled(stage, records, journal)
    share = (time.perf_counter() - started) / max(1, len(live))
    for record in live:
        charge(record, stage.name, share)
    for record in records:
        for key in drop:
            record.pop(key, None)
    return records


def _timed(stage: Stage, records: list[Record], journal: Journal | None,
           drop: tuple[str, ...] = (), writer: BatchWriter | None = None) -> pa.Table:
    """:func:`run_timed` between Ray blocks; after the pass's last stage (given the pass's
    `writer`) the rows are written here and only the batch's report travels on."""
    records = run_timed(stage, records, journal, () if writer else drop)
    if writer is not None:  # the pass's last stage: rows go to storage, metadata on
        return write_batch(writer, records).to_table()
    return from_records(records)


_TASK_STAGES: dict[tuple, Stage] = {}  # per worker process: stages already set up


def _task_stage(spec: StageSpec) -> Stage:
    """A stateless stage set up once per worker process: Ray reuses task workers, and some
    set-ups (spaCy, tokenizers) take seconds."""
    key = (spec.name, spec.cls.__name__, spec.options.model_dump_json(), spec.store)
    stage = _TASK_STAGES.get(key)
    if stage is None:
        stage = spec.build()
        stage.setup()
        _TASK_STAGES[key] = stage
    return stage


def run_stage_task(batch: pa.Table, spec: StageSpec, drop: tuple[str, ...] = (),
                   writer: BatchWriter | None = None) -> pa.Table:
    """A stateless stage as a Ray task."""
    return _timed(_task_stage(spec), to_records(batch), journal_of(spec), drop, writer)


class StageActor:
    """A stateful stage (a model) as a Ray actor: set up once, then called per batch."""

    def __init__(self, spec: StageSpec, drop: tuple[str, ...] = (),
                 writer: BatchWriter | None = None):
        self.stage = spec.build()
        self.stage.setup()
        self.journal = journal_of(spec)
        self.drop, self.writer = drop, writer

    def __call__(self, batch: pa.Table) -> pa.Table:
        return _timed(self.stage, to_records(batch), self.journal, self.drop, self.writer)


def run_partial(batch: pa.Table, spec: StageSpec) -> pa.Table:
    """An aggregate stage's partial aggregation of one batch of its source table."""
    stage = spec.build()
    stage.setup()
    return stage.partial(batch)


class Compactor:
    """Compacts a partition's batch files before their commit, as one long-lived Ray actor of
    a small pool: a fresh process per compaction would pay a Python start-up each time."""

    def compact(self, writer: BatchWriter, unit: str, files: list[WrittenFile]
                ) -> list[WrittenFile]:
        return compact(writer, unit, files)
