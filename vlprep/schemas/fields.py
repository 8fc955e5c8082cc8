"""Field builders shared by every table schema, so keys and feature types never drift."""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = "1"

# Every row of every table carries the video it came from.
VIDEO_ID = pa.field("video_id", pa.string(), nullable=False)


def fp16_vector(dim: int) -> pa.DataType:
    """A fixed-length fp16 feature vector: compact on disk, zero-copy into numpy."""
    return pa.list_(pa.float16(), dim)


def table_schema(name: str, fields: list[pa.Field]) -> pa.Schema:
    """A table schema with the shared key first and the table name and version as metadata."""
    return pa.schema(
        [VIDEO_ID, *fields],
        metadata={"vlprep.table": name, "vlprep.schema_version": SCHEMA_VERSION},
    )


def with_vector_dims(schema: pa.Schema, **dims: int) -> pa.Schema:
    """The same schema with the named vector columns resized (model-dependent dims): a
    fixed-size vector column, or a list of such vectors (one per window, box, ...)."""
    for column, dim in dims.items():
        index = schema.get_field_index(column)
        if index < 0:
            raise KeyError(f"{column!r} is not a column of {schema.metadata[b'vlprep.table']!r}")
        old = schema.field(index)
        if pa.types.is_fixed_size_list(old.type):
            new = pa.list_(old.type.value_type, dim)
        else:
            new = pa.list_(pa.list_(old.type.value_type.value_type, dim))
        schema = schema.set(index, pa.field(column, new, nullable=old.nullable))
    return schema
