"""The driver side of a pass: gather what workers wrote, commit each partition once whole.

Workers report, per batch, the videos they finished and the files they wrote (metadata only).
When every video of a partition is accounted for, its files are committed: moved to their
final names, then listed by the partition's commit record (:meth:`Store.commit_unit`).
Small files of a partition are first merged into files of about ``target_file_bytes`` by a
compaction job that the executor runs on a worker (``compact``), never here. Files that no
commit lists (a dead attempt's, compacted originals) are deleted with ``_tmp`` after the pass
and by recovery, so exactly-once holds whatever dies when.

Kept free of Ray: an executor passes ``compact``, a function that starts a compaction of one
unit's files and returns a ``concurrent.futures.Future`` of the files it wrote.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

from vlprep.failpoints import failpoint
from vlprep.store.layout import partition_unit
from vlprep.store.store import Commit, Store
from vlprep.store.writer import BatchWriter, WrittenFile, compact

log = logging.getLogger("vlprep")
Compactor = Callable[[BatchWriter, str, list[WrittenFile]], "Future[list[WrittenFile]]"]


def compact_here(writer: BatchWriter, unit: str, files: list[WrittenFile]
                 ) -> Future[list[WrittenFile]]:
    """Compaction in this process: for executors without workers, and for tests."""
    future: Future[list[WrittenFile]] = Future()
    future.set_result(compact(writer, unit, files))
    return future


@dataclass
class _Partition:
    videos: set[str] = field(default_factory=set)
    files: list[WrittenFile] = field(default_factory=list)


@dataclass
class _Pending:
    """A whole partition waiting for its compactions: per table, the files in order, each
    either written (a list of one) or a future of the compacted files."""

    pid: int
    videos: int
    tables: dict[str, list[list[WrittenFile] | Future]]


class Committer:
    def __init__(self, store: Store, writer: BatchWriter, expected: dict[int, int],
                 compact: Compactor = compact_here):
        self.store = store
        self.writer = writer
        self.expected = dict(expected)  # pid -> videos, for partitions not yet committed
        self.compact = compact
        self.partitions: dict[int, _Partition] = {}
        self.pending: list[_Pending] = []
        self.bytes_committed = 0

    def add(self, pid: int, videos: list[str], files: list[WrittenFile]) -> list[Commit]:
        """One batch's share of a partition: its videos and the files written for them.
        Returns the commits this completes (now or of earlier partitions' compactions)."""
        if pid not in self.expected:
            raise RuntimeError(f"videos {videos[:3]} from unexpected partition {pid}")
        part = self.partitions.setdefault(pid, _Partition())
        seen = part.videos.intersection(videos)
        if seen:
            if seen == set(videos):  # a batch delivered twice: its second files are waste
                log.warning("partition %d: a batch of %d videos arrived twice; once is kept",
                            pid, len(videos))
                return self.poll()
            raise RuntimeError(f"partition {pid}: videos {sorted(seen)[:3]} arrived twice in "
                               "different batches")
        part.videos.update(videos)
        part.files += files
        if len(part.videos) > self.expected[pid]:
            raise RuntimeError(f"partition {pid}: more videos than its input holds")
        if len(part.videos) == self.expected[pid]:
            failpoint("collector.partition_complete")
            self._start(pid, self.partitions.pop(pid))
        return self.poll()

    def _start(self, pid: int, part: _Partition) -> None:
        unit = partition_unit(pid, self.writer.pass_index)
        tables: dict[str, list[list[WrittenFile] | Future]] = {}
        by_table: dict[str, list[WrittenFile]] = {}
        for f in part.files:
            by_table.setdefault(f.table, []).append(f)
        for table, files in sorted(by_table.items()):
            tables[table] = [group if len(group) == 1 else self.compact(self.writer, unit, group)
                             for group in plan_files(files, self.writer.target_file_bytes)]
        self.pending.append(_Pending(pid, len(part.videos), tables))

    def poll(self) -> list[Commit]:
        """Commit the whole partitions whose compactions (if any) have finished."""
        done = []
        for item in list(self.pending):
            if all(not isinstance(g, Future) or g.done() for gs in item.tables.values()
                   for g in gs):
                self.pending.remove(item)
                done.append(self._commit(item))
        return done

    def finish(self) -> list[Commit]:
        """Wait for every started compaction and commit what it completes."""
        for item in self.pending:
            for groups in item.tables.values():
                for g in groups:
                    if isinstance(g, Future):
                        g.result()
        return self.poll()

    def _commit(self, item: _Pending) -> Commit:
        files: dict[str, list[str]] = {}
        rows: dict[str, int] = {}
        for table, groups in item.tables.items():
            written = [f for g in groups for f in (g.result() if isinstance(g, Future) else g)]
            files[table] = [f.path for f in written]
            rows[table] = sum(f.rows for f in written)
            self.bytes_committed += sum(f.size for f in written)
        commit = self.store.commit_unit(partition_unit(item.pid, self.writer.pass_index),
                                        item.videos, files, rows)
        del self.expected[item.pid]
        return commit

    @property
    def incomplete(self) -> dict[int, int]:
        """Partitions not committed: pid -> how many of their videos arrived."""
        arrived = {p.pid: p.videos for p in self.pending}
        return {pid: arrived.get(pid, len(self.partitions.get(pid, _Partition()).videos))
                for pid in self.expected}


def plan_files(files: list[WrittenFile], target_bytes: int) -> list[list[WrittenFile]]:
    """A partition's files of one table in their lasting order (by first video), grouped so
    each group makes one file of at most about `target_bytes`; a group of one stays as it is.
    Files already at least half the target are never rewritten."""
    groups: list[list[WrittenFile]] = []
    current: list[WrittenFile] = []
    size = 0
    for f in sorted(files, key=lambda f: (f.first, f.path)):
        if f.nbytes >= target_bytes // 2:
            groups += [current] if current else []
            groups.append([f])
            current, size = [], 0
            continue
        if current and size + f.nbytes > target_bytes:
            groups.append(current)
            current, size = [], 0
        current.append(f)
        size += f.nbytes
    return groups + ([current] if current else [])
