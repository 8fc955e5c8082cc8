"""The feature store: one Parquet dataset per table, written exactly once per input partition.

Layout (``STORE`` is a local path or a URI that ``pyarrow.fs`` understands)::

    STORE/<table>/part-<pid>-<k>.parquet   the data, readable by any Parquet reader
    STORE/_inputs/part-<pid>.parquet        the normalised manifest, one file per partition
    STORE/_inputs/_index.json               partitions, their sizes, the manifest fingerprint
    STORE/_commits/part-<pid>.json          commit record: the partition is done, its files
    STORE/_tmp/                             files being written; never visible to readers

A partition's files are written under ``_tmp``, renamed into place, and then its commit record
is written (also aside, then renamed). A file in a table folder whose partition has no commit
record is left over from a crash: :meth:`Store.recover` deletes it before a run resumes, so a
re-run rewrites that partition and nothing is duplicated.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

import vlprep
from vlprep.pipeline.failpoints import failpoint

INPUTS, COMMITS, TMP = "_inputs", "_commits", "_tmp"
_PART = re.compile(r"^part-(\d{6})(?:-\d{3})?\.(parquet|json)$")


class StoreError(RuntimeError):
    """The store cannot be read or written; the message is one line."""


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI such as s3://bucket/prefix."""
    if "://" in uri:
        fs, path = pafs.FileSystem.from_uri(uri)
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def part_name(pid: int, k: int | None = None, ext: str = "parquet") -> str:
    return f"part-{pid:06d}.{ext}" if k is None else f"part-{pid:06d}-{k:03d}.{ext}"


@dataclass(frozen=True)
class Commit:
    pid: int
    videos: int
    files: dict[str, list[str]]  # table -> file names
    rows: dict[str, int]


class Store:
    def __init__(self, uri: str):
        self.uri = uri
        self.fs, self.root = open_filesystem(uri)

    # paths -------------------------------------------------------------------------------
    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def exists(self) -> bool:
        return self.fs.get_file_info(self.root).type == pafs.FileType.Directory

    def _list(self, *parts: str) -> list[pafs.FileInfo]:
        info = self.fs.get_file_info(pafs.FileSelector(self.path(*parts), allow_not_found=True))
        return sorted(info, key=lambda i: i.path)

    def tables(self) -> list[str]:
        """Names of the table folders (not the underscore-prefixed bookkeeping)."""
        return [i.base_name for i in self._list()
                if i.type == pafs.FileType.Directory and not i.base_name.startswith(("_", "."))]

    def table_files(self, table: str) -> list[str]:
        return [i.path for i in self._list(table)
                if i.type == pafs.FileType.File and i.base_name.endswith(".parquet")]

    # commits -----------------------------------------------------------------------------
    def committed(self) -> set[int]:
        out = set()
        for info in self._list(COMMITS):
            m = _PART.match(info.base_name)
            if m and m.group(2) == "json":
                out.add(int(m.group(1)))
        return out

    def commits(self) -> list[Commit]:
        records = []
        for pid in sorted(self.committed()):
            data = json.loads(self.read_bytes(self.path(COMMITS, part_name(pid, ext="json"))))
            records.append(Commit(data["pid"], data["videos"], data["files"], data["rows"]))
        return records

    def recover(self) -> list[str]:
        """Delete what a crashed run left: temporary files and files of uncommitted partitions."""
        removed = []
        if self.fs.get_file_info(self.path(TMP)).type == pafs.FileType.Directory:
            self.fs.delete_dir(self.path(TMP))
            removed.append(self.path(TMP))
        done = self.committed()
        for table in self.tables():
            for info in self._list(table):
                m = _PART.match(info.base_name)  # files not named by us are left alone
                if info.type == pafs.FileType.File and m and int(m.group(1)) not in done:
                    self.fs.delete_file(info.path)
                    removed.append(info.path)
        return removed

    def write_partition(self, pid: int, videos: int, tables: dict[str, pa.Table],
                        target_file_bytes: int) -> Commit:
        """Write one partition's tables and commit it: all of it becomes visible, or none."""
        aside = self.path(TMP, uuid.uuid4().hex)
        self.fs.create_dir(aside)
        moves: list[tuple[str, str]] = []
        files: dict[str, list[str]] = {}
        for table, data in sorted(tables.items()):
            if data.num_rows == 0:
                continue
            self.fs.create_dir(self.path(table))
            files[table] = []
            for k, chunk in enumerate(_split_by_bytes(data, target_file_bytes)):
                name = part_name(pid, k)
                tmp = f"{aside}/{table}-{name}"
                _write_parquet(self.fs, tmp, chunk, target_file_bytes)
                moves.append((tmp, self.path(table, name)))
                files[table].append(name)
        for i, (src, dst) in enumerate(moves):
            self.fs.move(src, dst)
            if i == 0:
                failpoint("store.first_file_moved")
        failpoint("store.files_moved")
        commit = Commit(pid, videos, files, {t: d.num_rows for t, d in tables.items()})
        record = dict(pid=pid, videos=videos, files=files, rows=commit.rows,
                      committed_at=time.time(), vlprep_version=vlprep.__version__)
        self.write_atomic(self.path(COMMITS, part_name(pid, ext="json")),
                          json.dumps(record, indent=1).encode())
        failpoint("store.committed")
        self.fs.delete_dir(aside)
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


def _split_by_bytes(table: pa.Table, target_bytes: int) -> list[pa.Table]:
    """Slices of about `target_bytes` (in memory) each, so files suit training readers."""
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    rows = max(1, target_bytes // per_row)
    return [table.slice(i, rows) for i in range(0, table.num_rows, rows)] or [table]


def _write_parquet(fs: pafs.FileSystem, path: str, table: pa.Table, target_bytes: int) -> None:
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    row_group = max(1, min(table.num_rows, (64 * 2**20) // per_row, target_bytes // per_row))
    metadata = dict(table.schema.metadata or {})
    metadata[b"vlprep.version"] = vlprep.__version__.encode()
    pq.write_table(table.replace_schema_metadata(metadata), path, filesystem=fs,
                   row_group_size=row_group, compression="zstd")
