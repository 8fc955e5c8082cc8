"""Reading a store for export: committed files only, by partition, with column projection.

Every table a job writes for an input partition lives in files named after that partition
(``[ph<N>-]part-<pid>-<k>.parquet``) and listed by the partition's commit records, so all the
rows of one video, in every table, are inside one partition. Exports therefore walk the
partitions in order and hold at most one partition of the projected columns in memory; a
crashed run's uncommitted files are never read.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlprep.export import ExportError
from vlprep.store import RECIPE_FILE, CommittedStore, StoreError
from vlprep.store.layout import CORPUS

__all__ = ["CORPUS", "StoreSource", "group_rows"]


class StoreSource:
    """A store opened for export: the store's one committed-data reader, by partition."""

    def __init__(self, uri: str):
        self.uri = uri
        try:
            self.data = CommittedStore(uri)
        except StoreError as e:
            raise ExportError(str(e)) from e
        except (OSError, json.JSONDecodeError) as e:
            raise ExportError(f"store {uri}: cannot read its commit records: {e}") from e
        self.store = self.data.store
        self.partitions = self.data.partitions

    # what is there -------------------------------------------------------------------------
    def tables(self) -> set[str]:
        return set(self.data.tables())

    def require(self, table: str, stage: str) -> None:
        if table not in self.tables():
            raise ExportError(f"store {self.uri} has no committed `{table}` table: run a job "
                              f"with the {stage} stage first")

    def files(self, table: str) -> list[str]:
        return self.data.files(table)

    def columns(self, table: str) -> list[str]:
        return self.data.columns(table)

    def recipe_stage(self, kind: str) -> dict[str, Any] | None:
        """The recipe entry of the first stage of `kind` that made this store, if recorded."""
        try:
            recipe = self.data.read_json(RECIPE_FILE) or {}
        except (OSError, ValueError):
            return None
        return next((s for s in recipe.get("stages", []) if s.get("kind") == kind), None)

    # reading -------------------------------------------------------------------------------
    def batches(self, table: str, columns: list[str],
                batch_rows: int = 1024) -> Iterator[pa.RecordBatch]:
        """Record batches of `table`, partition by partition, file by file."""
        yield from self.data.batches(table, columns, batch_rows)

    def partition_table(self, key: str, table: str, columns: list[str]) -> pa.Table | None:
        """One partition's rows of `table` (projected), or None if it has none."""
        return self.data.partition_table(key, table, columns)

    def videos(self, table: str, columns: list[str], sort_by: str | None = None,
               with_: tuple[str, list[str]] | None = None, single_row: bool = False
               ) -> Iterator[tuple[str, pa.Table, pa.Table | None]]:
        """(video_id, its rows of `table`, its rows of the `with_` table or None), video by
        video in store order, one partition at a time; rows sorted by `sort_by` when given.
        `single_row`: `table` has one row per video (s3d), so it is streamed by record
        batches and only the `with_` table's partition is held."""
        cols = list(dict.fromkeys(["video_id", *columns]))
        for key, per in self.partitions.items():
            if table not in per:
                continue
            other = None
            if with_ is not None:
                other_cols = list(dict.fromkeys(["video_id", *with_[1]]))
                other = self.partition_table(key, with_[0], other_cols)
            others = dict(group_rows(other))
            if single_row:
                for path in per[table]:
                    with self.store.fs.open_input_file(path) as f:
                        for batch in pq.ParquetFile(f).iter_batches(batch_size=64, columns=cols):
                            rows = pa.Table.from_batches([batch])
                            for i, vid in enumerate(rows.column("video_id").to_pylist()):
                                yield vid, rows.slice(i, 1), others.get(vid)
                continue
            for video_id, rows in group_rows(self.partition_table(key, table, cols)):
                if sort_by is not None:
                    rows = rows.sort_by(sort_by)
                yield video_id, rows, others.get(video_id)

    def count_videos(self, table: str) -> int:
        """Distinct videos of `table` (reads only the id column, a partition at a time)."""
        total = 0
        for key, per in self.partitions.items():
            if table in per:
                ids = self.partition_table(key, table, ["video_id"])
                total += len(pc.unique(ids.column("video_id")))
        return total


def group_rows(table: pa.Table | None) -> Iterator[tuple[str, pa.Table]]:
    """The rows of each video_id, in order of first appearance, rows in table order."""
    if table is None or table.num_rows == 0:
        return
    ids = table.column("video_id").combine_chunks()
    encoded = pc.dictionary_encode(ids)
    codes = encoded.indices.to_numpy(zero_copy_only=False)
    order = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[order])) + 1
    groups = np.split(order, bounds)
    groups.sort(key=lambda g: g[0])  # first appearance
    names = encoded.dictionary
    for rows in groups:
        yield names[int(codes[rows[0]])].as_py(), table.take(pa.array(rows))
