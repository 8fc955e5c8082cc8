"""Reading a store for export: committed files only, by partition, with column projection.

Every table a job writes for an input partition lives in files named after that partition
(``[ph<N>-]part-<pid>-<k>.parquet``) and listed by the partition's commit records, so all the
rows of one video, in every table, are inside one partition. Exports therefore walk the
partitions in order and hold at most one partition of the projected columns in memory; a
crashed run's uncommitted files are never read.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vlprep.export import ExportError
from vlprep.pipeline.store import Store, StoreError

_UNIT = re.compile(r"^(?:ph\d+-)?part-(\d{6})$")
CORPUS = "corpus"  # the partition key of corpus-wide units (agg-entities)


class StoreSource:
    """A store opened for export: which committed files each partition has, per table."""

    def __init__(self, uri: str):
        self.uri = uri
        try:
            self.store = Store(uri)
            if not self.store.exists():
                raise ExportError(f"store {uri}: no such directory")
            commits = self.store.commits()
        except (StoreError, OSError, json.JSONDecodeError) as e:
            raise ExportError(f"store {uri}: cannot read its commit records: {e}") from e
        files: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        for commit in commits:
            match = _UNIT.match(commit.unit)
            key = match.group(1) if match else CORPUS
            for table, names in commit.files.items():
                files[key][table].extend(self.store.path(table, n) for n in sorted(names))
        self.partitions = {k: dict(v) for k, v in sorted(files.items())}

    # what is there -------------------------------------------------------------------------
    def tables(self) -> set[str]:
        return {t for per in self.partitions.values() for t in per}

    def require(self, table: str, stage: str) -> None:
        if table not in self.tables():
            raise ExportError(f"store {self.uri} has no committed `{table}` table: run a job "
                              f"with the {stage} stage first")

    def files(self, table: str) -> list[str]:
        return [p for per in self.partitions.values() for p in per.get(table, ())]

    def columns(self, table: str) -> list[str]:
        files = self.files(table)
        if not files:
            return []
        return pq.read_schema(files[0], filesystem=self.store.fs).names

    def recipe_stage(self, kind: str) -> dict[str, Any] | None:
        """The recipe entry of the first stage of `kind` that made this store, if recorded."""
        try:
            recipe = json.loads(self.store.read_bytes(self.store.path("_recipe.json")))
        except (OSError, ValueError):
            return None
        return next((s for s in recipe.get("stages", []) if s.get("kind") == kind), None)

    # reading -------------------------------------------------------------------------------
    def batches(self, table: str, columns: list[str],
                batch_rows: int = 1024) -> Iterator[pa.RecordBatch]:
        """Record batches of `table`, partition by partition, file by file."""
        for path in self.files(table):
            with self.store.fs.open_input_file(path) as f:
                yield from pq.ParquetFile(f).iter_batches(batch_size=batch_rows, columns=columns)

    def partition_table(self, key: str, table: str, columns: list[str]) -> pa.Table | None:
        """One partition's rows of `table` (projected), or None if it has none."""
        paths = self.partitions.get(key, {}).get(table, [])
        parts = []
        for path in paths:
            with self.store.fs.open_input_file(path) as f:
                parts.append(pq.ParquetFile(f).read(columns=columns))
        return pa.concat_tables(parts) if parts else None

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
