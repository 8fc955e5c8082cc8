"""The normalised input manifest: what every reader and converter produces (CONTRACT.md)."""

from __future__ import annotations

import pyarrow as pa

SEGMENT = pa.struct([
    pa.field("start", pa.float64()),
    pa.field("end", pa.float64()),
    pa.field("text", pa.string()),
])

MANIFEST = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("path", pa.string(), nullable=False),
    pa.field("caption", pa.string()),
    # extra captions of the same video (MSR-VTT has 20); `caption` stays the first one
    pa.field("captions", pa.list_(pa.string())),
    pa.field("segments", pa.list_(SEGMENT)),
], metadata={"vlprep.table": "manifest", "vlprep.schema_version": "1"})

REQUIRED_COLUMNS = ("video_id", "path")
