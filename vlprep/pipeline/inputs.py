"""Cut the manifest into numbered input partitions inside the store, once.

Partitions are the unit of exactly-once output: the same manifest always gives the same
partitions, so a re-run knows which are done from the commit records alone. The manifest is
streamed (never read whole); the partition files double as a record of what was asked for.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.parquet as pq

from vlprep.failpoints import failpoint
from vlprep.jobs.manifest import ManifestError, manifest_fingerprint, read_manifest
from vlprep.schemas.manifest import MANIFEST
from vlprep.store.layout import INDEX, INPUTS, part_name
from vlprep.store.store import Store

PARTITION = pa.field("partition", pa.int64(), nullable=False)
INPUT_SCHEMA = MANIFEST.append(PARTITION)



@dataclass(frozen=True)
class InputIndex:
    fingerprint: str
    partition_size: int
    sizes: list[int]  # videos per partition, partition id = position

    @property
    def total(self) -> int:
        return sum(self.sizes)


def prepare_inputs(store: Store, manifest: str, partition_size: int) -> InputIndex:
    """The store's input partitions, written from the manifest on first use.

    A store remembers the manifest it was made from; running a different manifest (or another
    partition size) into it is refused rather than mixing two inputs' rows.
    """
    fingerprint = manifest_fingerprint(manifest)
    index_path = store.path(INPUTS, INDEX)
    if store.fs.get_file_info(index_path).type.name == "File":
        data = json.loads(store.read_bytes(index_path))
        index = InputIndex(data["fingerprint"], data["partition_size"], data["sizes"])
        if (index.fingerprint, index.partition_size) != (fingerprint, partition_size):
            raise ManifestError(
                f"store {store.uri} was made from another manifest or partition_size; "
                "use a new store for this input")
        return index
    sizes: list[int] = []
    pending: list[pa.RecordBatch] = []
    pending_rows = 0
    for batch in read_manifest(manifest):
        pending.append(batch)
        pending_rows += batch.num_rows
        while pending_rows >= partition_size:
            table = pa.Table.from_batches(pending, schema=MANIFEST)
            _write_partition(store, len(sizes), table.slice(0, partition_size))
            sizes.append(partition_size)
            rest = table.slice(partition_size)
            pending, pending_rows = rest.to_batches(), rest.num_rows
    if pending_rows:
        _write_partition(store, len(sizes), pa.Table.from_batches(pending, schema=MANIFEST))
        sizes.append(pending_rows)
    index = InputIndex(fingerprint, partition_size, sizes)
    store.write_atomic(index_path, json.dumps(
        dict(manifest=manifest, fingerprint=fingerprint, partition_size=partition_size,
             sizes=sizes, videos=index.total)).encode())
    return index


def _write_partition(store: Store, pid: int, table: pa.Table) -> None:
    table = table.append_column(PARTITION, pa.array([pid] * table.num_rows, pa.int64()))
    store.fs.create_dir(store.path(INPUTS))
    tmp = store.path(INPUTS, f".{part_name(pid)}.tmp")
    pq.write_table(table, tmp, filesystem=store.fs)
    store.fs.move(tmp, input_path(store, pid))
    failpoint("inputs.partition_written")


def input_path(store: Store, pid: int) -> str:
    return store.path(INPUTS, part_name(pid))
