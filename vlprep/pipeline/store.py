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
from vlprep.errors import StoreError  # noqa: F401 - re-exported
from vlprep.pipeline.failpoints import failpoint

INPUTS, COMMITS, TMP = "_inputs", "_commits", "_tmp"
# Our data file names: [ph<pass>-]part-<pid>-<k>.parquet and agg-<stage>-<k>.parquet
_DATA = re.compile(r"^(?:ph\d+-)?part-\d{6}-\d{3}\.parquet$|^agg-[\w.-]+-\d{3}\.parquet$")


def open_filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    """(filesystem, path inside it) for a local path or a URI such as s3://bucket/prefix.

    pyarrow's own filesystems first (s3, gs, hdfs, abfs), fsspec's for other schemes. S3
    endpoint and credentials come from the URI query (``?endpoint_override=host:port&
    scheme=http``) or the standard variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``...).
    """
    if "://" in uri:
        try:
            fs, path = pafs.FileSystem.from_uri(uri)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            import fsspec

            fsspec_fs, path = fsspec.core.url_to_fs(uri)
            fs = pafs.PyFileSystem(pafs.FSSpecHandler(fsspec_fs))
        return fs, path.rstrip("/")
    return pafs.LocalFileSystem(), str(Path(uri).expanduser().resolve())


def part_name(pid: int, k: int | None = None, ext: str = "parquet") -> str:
    return f"part-{pid:06d}.{ext}" if k is None else f"part-{pid:06d}-{k:03d}.{ext}"


def pass_prefix(pass_index: int) -> str:
    """File-name prefix of a pass over the videos: none for the first, `ph<N>-` after."""
    return "" if pass_index == 0 else f"ph{pass_index}-"


@dataclass(frozen=True)
class Commit:
    unit: str  # "part-000003", "ph1-part-000003" or "agg-entities"
    videos: int
    files: dict[str, list[str]]  # table -> file names
    rows: dict[str, int]


class Store:
    def __init__(self, uri: str):
        self.uri = uri
        self.fs, self.root = open_filesystem(uri)
        self.metadata: dict[str, str] = {}  # added to every Parquet file (e.g. the recipe)

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
    def committed_units(self) -> set[str]:
        return {i.base_name[:-5] for i in self._list(COMMITS)
                if i.type == pafs.FileType.File and i.base_name.endswith(".json")}

    def committed(self, pass_index: int = 0) -> set[int]:
        """Partition ids committed by a pass over the videos."""
        prefix = pass_prefix(pass_index) + "part-"
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
        listed = {f"{table}/{name}" for c in self.commits()
                  for table, names in c.files.items() for name in names}
        for table in self.tables():
            for info in self._list(table):  # files not named by us are left alone
                if (info.type == pafs.FileType.File and _DATA.match(info.base_name)
                        and f"{table}/{info.base_name}" not in listed):
                    self.fs.delete_file(info.path)
                    removed.append(info.path)
        return removed

    def write_partition(self, pid: int, videos: int, tables: dict[str, pa.Table],
                        target_file_bytes: int, pass_index: int = 0) -> Commit:
        """Write one partition's tables and commit it: all of it becomes visible, or none."""
        unit = f"{pass_prefix(pass_index)}part-{pid:06d}"
        return self.write_unit(unit, videos, tables, target_file_bytes)

    def write_unit(self, unit: str, videos: int, tables: dict[str, pa.Table],
                   target_file_bytes: int) -> Commit:
        """Write the tables of one commit unit under deterministic names, then commit it."""
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
                name = f"{unit}-{k:03d}.parquet"
                tmp = f"{aside}/{table}-{name}"
                write_parquet(tmp, chunk, target_file_bytes, self.metadata, self.fs)
                moves.append((tmp, self.path(table, name)))
                files[table].append(name)
        for i, (src, dst) in enumerate(moves):
            self.fs.move(src, dst)
            if i == 0:
                failpoint("store.first_file_moved")
        failpoint("store.files_moved")
        commit = Commit(unit, videos, files, {t: d.num_rows for t, d in tables.items()})
        record = dict(unit=unit, videos=videos, files=files, rows=commit.rows,
                      committed_at=time.time(), vlprep_version=vlprep.__version__)
        self.write_atomic(self.path(COMMITS, f"{unit}.json"),
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


def write_parquet(where, table: pa.Table, target_bytes: int,
                  extra: dict[str, str] | None = None,
                  filesystem: pafs.FileSystem | None = None) -> None:
    """Write one store file (a path on `filesystem`, or any Arrow sink) exactly as the store
    does: row groups sized for readers, zstd, the vlprep version and `extra` metadata."""
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    row_group = max(1, min(table.num_rows, (64 * 2**20) // per_row, target_bytes // per_row))
    metadata = dict(table.schema.metadata or {})
    metadata[b"vlprep.version"] = vlprep.__version__.encode()
    for key, value in (extra or {}).items():
        metadata[key.encode()] = value.encode()
    pq.write_table(table.replace_schema_metadata(metadata), where, filesystem=filesystem,
                   row_group_size=row_group, compression="zstd")
