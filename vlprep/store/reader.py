"""The one reader of a store's committed data: train, export, inspect, aggregates and the
later passes' error filter all see a store through it.

Only files that commit records list exist here, so a crashed run's leftovers (an orphan in
a table folder, anything under ``_tmp``) read as if they were not there. Files are grouped
by partition key: every table a job writes for an input partition, in every pass, lives in
that partition's units, so all the rows of one video are found inside one key.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from vlprep.store.fs import StoreError
from vlprep.store.layout import partition_key
from vlprep.store.store import Commit, Store


class CommittedStore:
    """Which committed files each partition key holds per table; whole-table, per-partition
    and per-batch reads with column projection."""

    def __init__(self, store: Store | str, must_exist: bool = True):
        self.store = store if isinstance(store, Store) else Store(store)
        self.uri = self.store.uri
        if must_exist and not self.store.exists():
            raise StoreError(f"store {self.uri}: no such directory")
        self.commits: list[Commit] = self.store.commits() if self.store.exists() else []
        files: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for commit in self.commits:
            key = partition_key(commit.unit)
            for table, names in commit.files.items():
                files[key][table].extend(self.store.path(table, n) for n in names)
        self.partitions = {k: dict(v) for k, v in sorted(files.items())}
        self._meta: dict[str, pq.FileMetaData] = {}

    @property
    def fs(self):
        return self.store.fs

    # what is there -------------------------------------------------------------------------
    def tables(self) -> list[str]:
        return sorted({t for per in self.partitions.values() for t in per})

    def files(self, table: str) -> list[str]:
        """The table's committed files, partition by partition, in commit order."""
        return [p for per in self.partitions.values() for p in per.get(table, ())]

    def partition_files(self, key: str, table: str) -> list[str]:
        return list(self.partitions.get(key, {}).get(table, ()))

    def metadata(self, path: str) -> pq.FileMetaData:
        if path not in self._meta:
            self._meta[path] = pq.read_metadata(path, filesystem=self.fs)
        return self._meta[path]

    def schema(self, table: str) -> pa.Schema | None:
        """The table's schema as written (with its metadata), or None without files."""
        files = self.files(table)
        return self.metadata(files[0]).schema.to_arrow_schema() if files else None

    def columns(self, table: str) -> list[str]:
        schema = self.schema(table)
        return schema.names if schema is not None else []

    def count_rows(self, table: str) -> int:
        return sum(self.metadata(p).num_rows for p in self.files(table))

    def bytes(self, table: str) -> int:
        return sum(info.size or 0 for info in self.fs.get_file_info(self.files(table)))

    def read_json(self, name: str) -> dict | None:
        """A bookkeeping JSON file at the store's top (recipe, input index), if present."""
        path = self.store.path(name)
        if not self.store.is_file(path):
            return None
        return json.loads(self.store.read_bytes(path))

    # reading -------------------------------------------------------------------------------
    def dataset(self, table: str) -> pads.Dataset:
        """The committed files of `table` as one pyarrow dataset (streams, projects)."""
        return pads.dataset(self.files(table), filesystem=self.fs, format="parquet")

    def read(self, table: str, columns: list[str], empty: pa.Schema | None = None) -> pa.Table:
        """A whole table, projected (small ones: entities, errors ids, a source column)."""
        if not self.files(table):
            if empty is None:
                raise StoreError(f"store {self.uri} has no committed {table} table")
            return empty.empty_table().select(columns)
        return self.dataset(table).to_table(columns=columns)

    def batches(self, table: str, columns: list[str],
                batch_rows: int = 1024) -> Iterator[pa.RecordBatch]:
        """Record batches of `table`, partition by partition, file by file."""
        for path in self.files(table):
            with self.fs.open_input_file(path) as f:
                yield from pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=columns)

    def partition_table(self, key: str, table: str, columns: list[str]) -> pa.Table | None:
        """One partition's rows of `table` (projected), or None if it has none."""
        parts = []
        for path in self.partition_files(key, table):
            with self.fs.open_input_file(path) as f:
                parts.append(pq.ParquetFile(f).read(columns=columns))
        return pa.concat_tables(parts) if parts else None

    def read_row_group(self, path: str, row_group: int, columns: list[str]) -> pa.Table:
        with self.fs.open_input_file(path) as f:
            return pq.ParquetFile(f).read_row_group(row_group, columns=columns)
