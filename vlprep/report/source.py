"""The store as the report reads it: committed files only, a partition at a time.

Everything goes through the store's one committed-data reader,
:class:`vlprep.store.CommittedStore` (commit records, column projection, partition-at-a-time
reads), so the report sees exactly what training and export see, on a local path or an
object-store URI alike, and a crashed run's leftovers never. A store with only some tables,
or with only some partitions committed, is reported as it is.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vlprep.store import INDEX, INPUTS, RECIPE_FILE, RUNS, CommittedStore, StoreError


class ReportSource:
    """A store opened read-only for the report."""

    def __init__(self, uri: str):
        self.uri = uri
        try:
            self.source = CommittedStore(uri)
        except (OSError, ValueError) as e:
            raise StoreError(f"store {uri}: cannot read its commit records: {e}") from None
        self.store = self.source.store
        if not self._is_file(self.store.path(INPUTS, INDEX)):
            raise StoreError(f"store {uri}: not a vlprep store (no {INPUTS}/{INDEX})")
        self.index: dict[str, Any] = json.loads(self.store.read_bytes(
            self.store.path(INPUTS, INDEX)))
        self.recipe: dict[str, Any] | None = self._json(RECIPE_FILE)

    # small files ---------------------------------------------------------------------------
    def _is_file(self, path: str) -> bool:
        return self.store.fs.get_file_info(path).type == pafs.FileType.File

    def _json(self, name: str) -> Any:
        path = self.store.path(name)
        return json.loads(self.store.read_bytes(path)) if self._is_file(path) else None

    def runs(self) -> list[dict[str, Any]]:
        """The per-run summaries under `_runs/`, oldest first (names carry the UTC time)."""
        infos = self.store.fs.get_file_info(pafs.FileSelector(self.store.path(RUNS),
                                                              allow_not_found=True))
        out = []
        for info in sorted(infos, key=lambda i: i.base_name):
            if info.type == pafs.FileType.File and info.base_name.endswith(".json"):
                summary = json.loads(self.store.read_bytes(info.path))
                summary["_file"] = info.base_name
                out.append(summary)
        return out

    def inputs_of(self, pid: int, columns: tuple[str, ...] = ("video_id", "path")) -> pa.Table:
        """The normalised manifest rows of one input partition."""
        path = self.store.path(INPUTS, f"part-{pid:06d}.parquet")
        if not self._is_file(path):
            return pa.table({c: pa.array([], pa.string()) for c in columns})
        return pq.read_table(path, columns=list(columns), filesystem=self.store.fs)

    # tables --------------------------------------------------------------------------------
    def tables(self) -> list[str]:
        return self.source.tables()

    def files(self, table: str) -> list[str]:
        return self.source.files(table)

    def columns(self, table: str) -> list[str]:
        return self.source.columns(table)

    def schema(self, table: str) -> pa.Schema | None:
        files = self.files(table)
        return pq.read_schema(files[0], filesystem=self.store.fs) if files else None

    def table_stats(self, table: str) -> dict[str, int]:
        rows = size = 0
        for path in self.files(table):
            rows += pq.read_metadata(path, filesystem=self.store.fs).num_rows
            size += self.store.fs.get_file_info(path).size or 0
        return {"rows": rows, "files": len(self.files(table)), "bytes": size}

    def batches(self, table: str, columns: list[str],
                batch_rows: int = 1024) -> Iterator[pa.RecordBatch]:
        """Record batches of a table (bounded memory: a batch at a time)."""
        yield from self.source.batches(table, columns, batch_rows)

    def partitions(self) -> dict[str, dict[str, list[str]]]:
        return self.source.partitions

    def video_rows(self, partition: str, table: str, ids: set[str],
                   columns: list[str] | None = None) -> pa.Table | None:
        """The rows of `table` in one partition whose video is in `ids`."""
        if table not in self.source.partitions.get(partition, {}):
            return None
        cols = columns if columns is not None else self.columns(table)
        cols = list(dict.fromkeys(["video_id", *cols]))
        data = self.source.partition_table(partition, table, cols)
        if data is None:
            return None
        return data.filter(pc.is_in(data.column("video_id"), pa.array(sorted(ids))))

    def read_small(self, table: str, columns: list[str]) -> pa.Table | None:
        """A whole small table (errors, entities, videos' probe facts)."""
        parts = [pa.Table.from_batches([b]) for b in self.batches(table, columns, 65536)]
        return pa.concat_tables(parts) if parts else None

    def partition_of(self, ids: set[str]) -> dict[str, int]:
        """Input partition of each of `ids` (the manifest is read a partition at a time)."""
        out: dict[str, int] = {}
        for pid in range(len(self.index.get("sizes", [])) if ids else 0):
            vids = self.inputs_of(pid, ("video_id",)).column(0).to_pylist()
            out.update({v: pid for v in vids if v in ids})
        return out
