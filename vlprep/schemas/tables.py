"""One pyarrow schema constant per store table (see CONTRACT.md, Store)."""

from __future__ import annotations

import pyarrow as pa

from vlprep.schemas.fields import fp16_vector, table_schema

VIDEOS = table_schema("videos", [
    pa.field("path", pa.string()),
    pa.field("duration", pa.float64()),
    pa.field("fps", pa.float64()),
    pa.field("frame_count", pa.int64()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("codec", pa.string()),
    pa.field("file_size", pa.int64()),
])

ERRORS = table_schema("errors", [
    pa.field("stage", pa.string(), nullable=False),
    pa.field("error", pa.string(), nullable=False),
    pa.field("path", pa.string()),
])

CLIP_FRAMES = table_schema("clip_frames", [
    pa.field("frame_index", pa.int32(), nullable=False),
    pa.field("time", pa.float32(), nullable=False),
    pa.field("sample_rank", pa.int16(), nullable=False),
    pa.field("embedding", fp16_vector(512), nullable=False),
])

TEXTS = table_schema("texts", [
    pa.field("segment", pa.int32(), nullable=False),
    pa.field("source", pa.string(), nullable=False),  # "caption" | "transcript"
    pa.field("text", pa.string(), nullable=False),
    pa.field("start", pa.float32()),
    pa.field("end", pa.float32()),
])
