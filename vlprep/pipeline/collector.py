"""Gather finished videos by input partition and commit each partition once it is complete."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field

import pyarrow as pa

from vlprep.pipeline.failpoints import failpoint
from vlprep.pipeline.store import Store
from vlprep.stages.record import Record, new_error, notes, outputs, timings

MAX_NOTES = 1000  # per stage, listed by video in the run summary (all are counted)


@dataclass
class StageCounts:
    videos: int = 0  # videos that reached the stage
    errors: Counter = field(default_factory=Counter)  # reason -> videos
    seconds: float = 0.0  # summed per-video shares of batch wall time (worker time)
    notes: dict[str, str] = field(default_factory=dict)  # video_id -> note, MAX_NOTES of them
    noted: int = 0  # videos with a note


@dataclass
class RunCounts:
    videos: int = 0
    failed: int = 0
    partitions: int = 0
    rows: Counter = field(default_factory=Counter)
    errors_by_stage: Counter = field(default_factory=Counter)
    stages: dict[str, StageCounts] = field(default_factory=dict)

    def note_video(self, record: Record) -> None:
        """Per-stage accounting of one finished video."""
        for name, seconds in timings(record).items():
            stage = self.stages.setdefault(name, StageCounts())
            stage.videos += 1
            stage.seconds += seconds
        for name, text in notes(record).items():
            stage = self.stages.setdefault(name, StageCounts())
            stage.noted += 1
            if len(stage.notes) < MAX_NOTES:
                stage.notes[str(record["video_id"])] = text
        error = new_error(record)
        if error:
            stage = self.stages.setdefault(error["stage"], StageCounts())
            stage.errors[error["error"]] += 1
            if error["stage"] not in timings(record):
                stage.videos += 1  # failed before any timing was taken (crash journal)


class PartitionCollector:
    """Holds finished videos until their partition is whole, then writes and commits it.

    Memory is bounded by the partitions in flight, not by the size of the run.
    """

    def __init__(self, store: Store, expected: dict[int, int], target_file_bytes: int,
                 pass_index: int = 0, counts: RunCounts | None = None):
        self.store = store
        self.pass_index = pass_index
        self.expected = dict(expected)
        self.target_file_bytes = target_file_bytes
        self.pending: dict[int, list[Record]] = defaultdict(list)
        self.counts = counts if counts is not None else RunCounts()

    def add(self, record: Record, count_video: bool = True) -> None:
        pid = record["partition"]
        if pid not in self.expected:
            raise RuntimeError(f"video {record['video_id']!r} from unexpected partition {pid}")
        self.pending[pid].append(record)
        self.counts.note_video(record)
        self.counts.videos += count_video
        error = new_error(record)
        if error:
            self.counts.failed += count_video
            self.counts.errors_by_stage[error["stage"]] += 1
        if len(self.pending[pid]) == self.expected[pid]:
            self._commit(pid)

    def _commit(self, pid: int) -> None:
        failpoint("collector.partition_complete")
        records = sorted(self.pending.pop(pid), key=lambda r: r["video_id"])
        per_table: dict[str, list[pa.Table]] = defaultdict(list)
        for record in records:
            for table, rows in outputs(record).items():
                per_table[table].append(rows)
        tables = {name: pa.concat_tables(parts) for name, parts in per_table.items()}
        self.store.write_partition(pid, len(records), tables, self.target_file_bytes,
                                   self.pass_index)
        del self.expected[pid]
        self.counts.partitions += self.pass_index == 0
        for name, table in tables.items():
            self.counts.rows[name] += table.num_rows

    @property
    def incomplete(self) -> dict[int, int]:
        """Partitions still missing videos: pid -> how many arrived."""
        return {pid: len(self.pending.get(pid, ())) for pid in self.expected}
