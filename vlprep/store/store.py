"""A store on its filesystem: paths, listings, commit records, recovery, small files.

A unit (an input partition in one pass, or an aggregate's output) becomes visible all at
once: its files, written aside under ``_tmp``, are moved to their final names, then its commit
record is written (also aside, then renamed; on object storage a move is a server-side copy).
A data file no commit record lists is left over from a crash: :meth:`Store.recover` deletes
it, and ``_tmp``, before a run resumes, so a re-run rewrites that unit and nothing is
duplicated.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.fs as pafs

import vlprep
from vlprep.failpoints import failpoint
from vlprep.store.fs import open_filesystem
from vlprep.store.layout import (
    COMMITS,
    DATA_FILE,
    TMP,
    WRITES,
    data_file,
    partition_unit,
)


@dataclass(frozen=True)
class Commit:
    unit: str  # "part-000003", "ph1-part-000003" or "agg-entities"
    videos: int
    files: dict[str, list[str]]  # table -> file names
    rows: dict[str, int]


class Store:
    def __init__(self, uri: str):
        self.uri = uri
        self.fs, root = open_filesystem(uri)
        self.root = root.rstrip("/")
        self.metadata: dict[str, str] = {}  # added to every Parquet file (e.g. the recipe)

    # paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self) -> bool:
        return self.fs.get_file_info(self.root).type == pafs.FileType.Directory

    def is_file(self, path: str) -> bool:
        return self.fs.get_file_info(path).type == pafs.FileType.File

    def _list(self, *parts: str) -> list[pafs.FileInfo]:
        info = self.fs.get_file_info(pafs.FileSelector(self.path(*parts), allow_not_found=True))
        return sorted(info, key=lambda i: i.path)

    def tables(self) -> list[str]:
        """Names of the table folders (not the underscore-prefixed bookkeeping)."""
        return [i.base_name for i in self._list()
                if i.type == pafs.FileType.Directory and not i.base_name.startswith(("_", "."))]

    def table_files(self, table: str) -> list[str]:
        """Every Parquet file in a table folder, committed or not (recovery's view; readers
        use :class:`vlprep.store.reader.CommittedStore`)."""
        return [i.path for i in self._list(table)
                if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")]

    # commits -----------------------------------------------------------------------------
    def committed_units(self) -> set[str]:
        return {i.base_name[:-5] for i in self._list(COMMITS)
                if i.type == pafs.FileType.File and i.base_name.endswith(".json")}

    def committed(self, pass_index: int = 0) -> set[int]:
        """Partition ids committed by a pass over the videos."""
        prefix = partition_unit(0, pass_index)[:-6]
        return {int(u[len(prefix):]) for u in self.committed_units()
                if u.startswith(prefix) and u[len(prefix):].isdigit()}

    def commits(self) -> list[Commit]:
        records = []
        for unit in sorted(self.committed_units()):
            data = json.loads(self.read_bytes(self.path(COMMITS, f"{unit}.json")))
            records.append(Commit(unit, data["videos"], data["files"], data["rows"]))
        return records

    def recover(self) -> list[str]:
        """Delete what a crashed run left: temporary files, and data files no commit lists."""
        removed = []
        if self.fs.get_file_info(self.path(TMP)).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path(TMP))
            removed.append(self.path(TMP))
        return removed + self.remove_uncommitted()

    def remove_uncommitted(self) -> list[str]:
        """Delete data files in table folders that no commit record lists."""
        removed = []
        listed = {f"{table}/{name}" for c in self.commits()
                  for table, names in c.files.items() for name in names}
        for table in self.tables():
            for info in self._list(table):  # files not named by us are left alone
                if (info.type == pafs.FileType.File and DATA_FILE.match(info.base_name)
                        and f"{table}/{info.base_name}" not in listed):
                    self.fs.delete_file(info.path)
                    removed.append(info.path)
        return removed

    def clear_writes(self) -> None:
        """Delete every write attempt's folder: after a pass, what is not committed is
        waste (a dead attempt's half files, compacted originals)."""
        path = self.path(TMP, WRITES)
        if self.fs.get_file_info(path).type == pafs.FileType.Directory:
            self.fs.delete_dir(path)

    def commit_unit(self, unit: str, videos: int, files: dict[str, list[str]],
                    rows: dict[str, int]) -> Commit:
        """Move a unit's written files (table -> paths under ``_tmp``, in order) to their
        final names, then write its commit record: from then on they are the unit's data."""
        names: dict[str, list[str]] = {}
        moves = []
        for table, paths in sorted(files.items()):
            if not paths:
                continue
            self.fs.create_dir(self.path(table))
            names[table] = [data_file(unit, k) for k in range(len(paths))]
            moves += [(src, self.path(table, name)) for src, name in zip(paths, names[table],
                                                                        strict=True)]
        for i, (src, dst) in enumerate(moves):
            self.fs.move(src, dst)
            if i == 0:
                failpoint("store.first_file_moved")
        failpoint("store.files_moved")
        commit = Commit(unit, videos, names, {t: n for t, n in rows.items() if t in names})
        record = dict(unit=unit, videos=videos, files=names, rows=commit.rows,
                      committed_at=time.time(), vlprep_version=vlprep.__version__)
        self.write_atomic(self.path(COMMITS, f"{unit}.json"),
                          json.dumps(record, indent=1).encode())
        failpoint("store.committed")
        return commit

    def write_partition(self, pid: int, videos: int, tables: dict[str, pa.Table],
                        target_file_bytes: int, pass_index: int = 0) -> Commit:
        """Write one partition's tables here and commit it: all of it becomes visible, or
        none (for small tables and tests; a run's workers write through BatchWriter)."""
        return self.write_unit(partition_unit(pid, pass_index), videos, tables,
                               target_file_bytes)

    def write_unit(self, unit: str, videos: int, tables: dict[str, pa.Table],
                   target_file_bytes: int) -> Commit:
        """Write the tables of one commit unit in this process, then commit it."""
        from vlprep.store.writer import BatchWriter

        writer = BatchWriter(self.uri, target_file_bytes, metadata=self.metadata)
        written = writer.write_unit(unit, tables, store=self)
        files: dict[str, list[str]] = {}
        for f in written:
            files.setdefault(f.table, []).append(f.path)
        commit = self.commit_unit(unit, videos, files,
                                  {t: d.num_rows for t, d in tables.items()})
        for attempt in {f.path.rsplit("/", 2)[0] for f in written}:  # emptied by the moves
            self.fs.delete_dir(attempt)
        if not self._list(TMP, WRITES):
            self.clear_writes()
        return commit

    # small files -------------------------------------------------------------------------
    def write_atomic(self, path: str, data: bytes) -> None:
        """Write a file aside and rename it into place, so readers see all of it or nothing."""
        self.fs.create_dir(path.rsplit("/", 1)[0])
        self.fs.create_dir(self.path(TMP))
        tmp = self.path(TMP, f"{uuid.uuid4().hex}.tmp")
        with self.fs.open_output_stream(tmp) as f:
            f.write(data)
        self.fs.move(tmp, path)

    def read_bytes(self, path: str) -> bytes:
        with self.fs.open_input_stream(path) as f:
            return f.read()
