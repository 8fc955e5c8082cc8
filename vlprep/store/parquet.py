"""How every store file is written: row groups sized for readers, zstd, vlprep metadata."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

import vlprep
from vlprep.failpoints import failpoint

ROW_GROUP_BYTES = 64 * 2**20


def split_by_bytes(table: pa.Table, target_bytes: int) -> list[pa.Table]:
    """Slices of about `target_bytes` (in memory) each, so files suit training readers."""
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    rows = max(1, target_bytes // per_row)
    return [table.slice(i, rows) for i in range(0, table.num_rows, rows)] or [table]


def write_parquet(where, table: pa.Table, target_bytes: int,
                  extra: dict[str, str] | None = None,
                  filesystem: pafs.FileSystem | None = None) -> None:
    """Write one store file (a path on `filesystem`, or any Arrow sink) exactly as the store
    does: row groups sized for readers, zstd, the vlprep version and `extra` metadata.

    Row groups are written one by one; between the first and the rest the file is open and
    incomplete (the ``writer.file_open`` failpoint, where a test kills a writing worker)."""
    per_row = max(1, table.nbytes // max(1, table.num_rows))
    row_group = max(1, min(table.num_rows, ROW_GROUP_BYTES // per_row, target_bytes // per_row))
    metadata = dict(table.schema.metadata or {})
    metadata[b"vlprep.version"] = vlprep.__version__.encode()
    for key, value in (extra or {}).items():
        metadata[key.encode()] = value.encode()
    table = table.replace_schema_metadata(metadata)
    with pq.ParquetWriter(where, table.schema, filesystem=filesystem,
                          compression="zstd") as writer:
        for i, start in enumerate(range(0, max(1, table.num_rows), row_group)):
            writer.write_table(table.slice(start, row_group), row_group_size=row_group)
            if i == 0:
                failpoint("writer.file_open", str(where))
