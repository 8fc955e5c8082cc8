"""Schemas of the backbone feature tables: `s3d`, `regions`, `trajectories` (CONTRACT.md).

Per-video and per-frame variable-length data are Arrow lists, so one row holds what a
training loader fetches at once. `s3d` is laid out so that VideoCLIP's sharded reader gets
its arrays without a copy: the flattened ``features`` column is ``data`` and the list offsets
are ``starts`` (see :func:`vlprep.columns.s3d_sharded`). Feature sizes depend on the model:
writers resize the vector columns with :func:`vlprep.schemas.fields.with_vector_dims`.
"""

from __future__ import annotations

import pyarrow as pa

from vlprep.schemas.fields import fp16_vector, table_schema

S3D = table_schema("s3d", [
    pa.field("num_windows", pa.int32(), nullable=False),  # seconds of video (1-s windows)
    pa.field("window_start", pa.list_(pa.float32()), nullable=False),  # seconds
    pa.field("window_end", pa.list_(pa.float32()), nullable=False),
    pa.field("features", pa.list_(fp16_vector(512)), nullable=False),  # video_embedding
    pa.field("mixed_5c", pa.list_(fp16_vector(1024))),  # null unless the job asks for it
])

REGIONS = table_schema("regions", [
    pa.field("frame_index", pa.int32(), nullable=False),
    pa.field("time", pa.float32(), nullable=False),
    pa.field("sample_rank", pa.int16(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),  # of the frame the boxes are in
    pa.field("height", pa.int32(), nullable=False),
    pa.field("boxes", pa.list_(pa.list_(pa.float32(), 4)), nullable=False),  # x1 y1 x2 y2 px
    pa.field("classes", pa.list_(pa.int32()), nullable=False),  # label-map ids, 0 = background
    pa.field("class_names", pa.list_(pa.string()), nullable=False),
    pa.field("scores", pa.list_(pa.float32()), nullable=False),
    pa.field("features", pa.list_(fp16_vector(1024)), nullable=False),  # region features
    # Oscar's box geometry: x1/W, y1/H, x2/W, y2/H, w/W, h/H
    pa.field("geometry", pa.list_(pa.list_(pa.float32(), 6)), nullable=False),
    # per box, the attributes a detector with an attribute head gives (VinVL: those above
    # 0.05, at most 16, by descending score; ids 1..524 of attribute_to_idx); null otherwise
    pa.field("attr_ids", pa.list_(pa.list_(pa.int16()))),
    pa.field("attr_names", pa.list_(pa.list_(pa.string()))),
    pa.field("attr_scores", pa.list_(pa.list_(pa.float32()))),
])

TRAJECTORIES = table_schema("trajectories", [
    pa.field("trajectory", pa.int16(), nullable=False),  # rank within the video
    pa.field("class_id", pa.int32(), nullable=False),
    pa.field("class_name", pa.string(), nullable=False),
    pa.field("confidence", pa.float32(), nullable=False),  # summed over the kept boxes
    pa.field("first_frame", pa.int16(), nullable=False),  # sample rank of first appearance
    pa.field("frame_size", pa.int16(), nullable=False),  # boxes are in this square frame
    # one entry per sampled frame (all rows of a video have the same length):
    pa.field("frame_index", pa.list_(pa.int32()), nullable=False),
    pa.field("boxes", pa.list_(pa.list_(pa.float32(), 4)), nullable=False),  # -1 where absent
    pa.field("scores", pa.list_(pa.float32()), nullable=False),  # 0 where absent
    pa.field("mask", pa.list_(pa.bool_()), nullable=False),  # True where present
])
