"""Read a store's committed tables by row group, and join them by video inside a partition.

Training never loads a whole table. The unit of work is one row group of a *driver* table
(the table with one or more rows per training video, e.g. `clip_frames`); the rows the other
tables hold for the same videos are found through a small per-partition index of which row
group holds which `video_id` (only the id column is read for it). Every table a job writes
for an input partition lives in files named after that partition, so a join never looks
beyond one partition, and only committed files (listed by commit records) are read: a crashed
run's leftovers are invisible here too.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlprep.schemas import TABLES
from vlprep.store import CommittedStore, StoreError
from vlprep.store.layout import CORPUS

__all__ = ["CORPUS", "StoreError", "StoreReader", "Unit", "group_by_video", "unit_videos"]


@dataclass(frozen=True)
class Unit:
    """One row group of the driver table: what a DataLoader worker reads at a time."""

    partition: str
    path: str
    row_group: int
    rows: int


class StoreReader:
    """Committed files per (partition, table), row-group reads with column projection."""

    def __init__(self, uri: str, cache_row_groups: int = 3):
        self.uri = uri
        self.data = CommittedStore(uri)  # the store's one reader of committed files
        self.store = self.data.store
        self.files = self.data.partitions
        self._cache: OrderedDict[tuple, pa.Table] = OrderedDict()
        self._cache_size = cache_row_groups
        self._ids: dict[tuple[str, int], frozenset[str]] = {}

    # what is there --------------------------------------------------------------------------
    def tables(self) -> set[str]:
        return set(self.data.tables())

    def table_files(self, table: str) -> list[str]:
        return self.data.files(table)

    def require(self, *tables: str) -> None:
        """One readable error naming every missing table (and the stage that writes it)."""
        missing = [t for t in tables if t not in self.tables()]
        if missing:
            raise StoreError(f"store {self.uri} has no {', '.join(missing)} table"
                             f"{'s' if len(missing) > 1 else ''}: run a job with the stages "
                             "that write them")

    def schema(self, table: str) -> pa.Schema:
        """The table's schema as written (vector sizes are the model's), else the constant."""
        files = self.table_files(table)
        if files:
            return self.metadata(files[0]).schema.to_arrow_schema()
        return TABLES[table]

    def has_column(self, table: str, column: str) -> bool:
        return column in self.schema(table).names

    def metadata(self, path: str) -> pq.FileMetaData:
        return self.data.metadata(path)

    def count_rows(self, table: str) -> int:
        return sum(self.metadata(p).num_rows for p in self.table_files(table))

    def units(self, table: str) -> list[Unit]:
        """Every row group of `table`, partition by partition, in file order."""
        out = []
        for key, per in self.files.items():
            for path in per.get(table, ()):
                meta = self.metadata(path)
                out.extend(Unit(key, path, i, meta.row_group(i).num_rows)
                           for i in range(meta.num_row_groups))
        return out

    # reading ----------------------------------------------------------------------------------
    def read_row_group(self, path: str, row_group: int, columns: list[str]) -> pa.Table:
        key = (path, row_group, tuple(columns))
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        table = self.data.read_row_group(path, row_group, columns)
        self._cache[key] = table
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return table

    def row_group_ids(self, path: str, row_group: int) -> frozenset[str]:
        """The video ids a row group holds (only the id column is read), memoised."""
        key = (path, row_group)
        if key not in self._ids:
            ids = self.data.read_row_group(path, row_group, ["video_id"])
            self._ids[key] = frozenset(ids.column(0).unique().to_pylist())
        return self._ids[key]

    def forget_partition(self, partition: str) -> None:
        """Drop the id index of a finished partition: memory stays per partition."""
        paths = {p for per in self.files.get(partition, {}).values() for p in per}
        for key in [k for k in self._ids if k[0] in paths]:
            del self._ids[key]

    def rows_for(self, partition: str, table: str, ids: set[str],
                 columns: list[str]) -> pa.Table:
        """The rows of `table` in `partition` whose video_id is in `ids` (projected)."""
        cols = ["video_id", *[c for c in columns if c != "video_id"]]
        parts = []
        for path in self.files.get(partition, {}).get(table, ()):
            for rg in range(self.metadata(path).num_row_groups):
                if ids & self.row_group_ids(path, rg):
                    data = self.read_row_group(path, rg, cols)
                    parts.append(data.filter(pc.is_in(data.column("video_id"),
                                                      pa.array(sorted(ids)))))
        if not parts:
            return self._empty(table, cols)
        return pa.concat_tables(parts)

    def _empty(self, table: str, cols: list[str]) -> pa.Table:
        schema = self.schema(table) if table in self.tables() else TABLES[table]
        return schema.empty_table().select(cols)

    def read_table(self, table: str, columns: list[str]) -> pa.Table:
        """A whole small table (corpus-wide ones such as `entities`); never a per-frame one."""
        if not self.table_files(table):
            return self._empty(table, columns)
        return self.data.read(table, columns)


def group_by_video(table: pa.Table) -> dict[str, pa.Table]:
    """Rows per video_id, each group in its original row order."""
    if table.num_rows == 0:
        return {}
    ids = table.column("video_id").to_pylist()
    index: dict[str, list[int]] = defaultdict(list)
    for i, video_id in enumerate(ids):
        index[video_id].append(i)
    return {v: table.take(pa.array(rows, pa.int64())) for v, rows in index.items()}


def unit_videos(reader: StoreReader, unit: Unit, earlier: list[Unit]) -> set[str]:
    """The videos a unit owns: those of its row group that no earlier row group of the same
    partition holds (a video's rows may straddle a row-group boundary)."""
    ids = set(reader.row_group_ids(unit.path, unit.row_group))
    for other in earlier:
        ids -= reader.row_group_ids(other.path, other.row_group)
    return ids
