"""The worker side of a pass: a batch's table rows become Parquet files under ``_tmp``.

The pass's last stage calls :meth:`BatchWriter.write` on the worker that ran it, whatever
executes the pass (Ray tasks or actors, or a local loop); only the small
:class:`WrittenFile` descriptions go back to the driver, never the rows. Each call writes
into a folder of its own (``_tmp/w/<attempt id>/``), so a retried batch cannot meet, and is
never committed with, the files a dead attempt left half written.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from vlprep.failpoints import failpoint
from vlprep.store.layout import TMP, WRITES, data_file, partition_unit
from vlprep.store.parquet import split_by_bytes, write_parquet


@dataclass(frozen=True)
class WrittenFile:
    """One file a worker wrote: what the driver needs to commit (and size) it."""

    table: str
    path: str  # in the store's filesystem, under _tmp/w/
    rows: int
    nbytes: int  # in memory (what target_file_bytes counts)
    size: int  # on storage
    first: str  # smallest video_id: orders a unit's files the same way in every run
    partition: int = -1

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> WrittenFile:
        return cls(**data)


@dataclass(frozen=True)
class BatchWriter:
    """Writes batches of one pass into a store; small and picklable, built by the driver."""

    store_uri: str
    target_file_bytes: int
    pass_index: int = 0
    metadata: dict[str, str] = field(default_factory=dict)  # added to every file (recipe)

    def write(self, rows: Iterable[tuple[int, str, pa.Table]]) -> list[WrittenFile]:
        """Write (partition, table, rows) pieces, grouped by partition and table, each
        group sorted by video_id and cut into files of about target_file_bytes."""
        groups: dict[tuple[int, str], list[pa.Table]] = {}
        for pid, table, data in rows:
            if data.num_rows:
                groups.setdefault((pid, table), []).append(data)
        if not groups:
            return []
        from vlprep.store.store import Store

        store = Store(self.store_uri)
        out: list[WrittenFile] = []
        for (pid, table), parts in sorted(groups.items()):
            data = pa.concat_tables(parts).sort_by("video_id")
            unit = partition_unit(pid, self.pass_index)
            out += [WrittenFile(**{**f.to_dict(), "partition": pid})
                    for f in self._write(store, unit, table, data)]
        return out

    def write_unit(self, unit: str, tables: dict[str, pa.Table], store=None) -> list[WrittenFile]:
        """Write a whole unit's tables as they are (an aggregate's output, tests)."""
        from vlprep.store.store import Store

        store = store or Store(self.store_uri)
        return [f for table, data in sorted(tables.items()) if data.num_rows
                for f in self._write(store, unit, table, data)]

    def _write(self, store, unit: str, table: str, data: pa.Table) -> list[WrittenFile]:
        folder = store.path(TMP, WRITES, uuid.uuid4().hex, table)
        store.fs.create_dir(folder)
        files = []
        for k, chunk in enumerate(split_by_bytes(data, self.target_file_bytes)):
            path = f"{folder}/{data_file(unit, k)}"
            write_parquet(path, chunk, self.target_file_bytes, self.metadata, store.fs)
            files.append(WrittenFile(table, path, chunk.num_rows, chunk.nbytes,
                                     store.fs.get_file_info(path).size or 0,
                                     _first_id(chunk)))
        return files


def _first_id(table: pa.Table) -> str:
    import pyarrow.compute as pc

    return str(pc.min(table.column("video_id")).as_py() or "")


def compact(writer: BatchWriter, unit: str, files: list[WrittenFile]) -> list[WrittenFile]:
    """Rewrite several small written files of one unit and table as files of about the
    target size, in the given order (a worker's job at commit time, never the driver's).
    The originals stay where they are: they are deleted with the pass's other leftovers."""
    from vlprep.store.store import Store

    store = Store(writer.store_uri)
    parts = []
    for f in files:
        with store.fs.open_input_file(f.path) as handle:
            parts.append(pq.ParquetFile(handle).read())
    data = pa.concat_tables(parts, promote_options="none").replace_schema_metadata(
        parts[0].schema.metadata)
    failpoint("writer.compacting", f"{unit} {files[0].table}")
    written = writer._write(store, unit, files[0].table, data)
    return [WrittenFile(**{**f.to_dict(), "partition": files[0].partition}) for f in written]


def writer_identity() -> dict:
    """Which process wrote: node (Ray's node id when in Ray, else the host) and pid."""
    node = os.uname().nodename
    try:
        import ray

        if ray.is_initialized():
            node = ray.get_runtime_context().get_node_id()
    except Exception:  # noqa: BLE001 - identity is informative, never fatal
        pass
    return {"node": node, "pid": os.getpid()}
