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
    # probe facts added for decoding (vlprep/stages/probe.py): `fps` above is the average rate
    pa.field("real_fps", pa.float64()),  # r_frame_rate: the lowest rate all timestamps fit
    pa.field("rotation", pa.int16()),  # display rotation, degrees counter-clockwise
    pa.field("pix_fmt", pa.string()),
    pa.field("bit_rate", pa.int64()),
    pa.field("start_time", pa.float64()),  # seconds: the first frame's pts_time
    pa.field("streams", pa.list_(pa.string())),  # "type:codec" of every stream, in order
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
    # optional CLIP patch tokens (stage option patch_tokens): the tokens entering a chosen
    # block, CLS excluded, row-major; `patch_grid` is the side of the (pooled) grid
    pa.field("patch_grid", pa.int16()),
    pa.field("patch_tokens", pa.list_(fp16_vector(768))),
])

TEXTS = table_schema("texts", [
    pa.field("segment", pa.int32(), nullable=False),
    pa.field("source", pa.string(), nullable=False),  # "caption" | "transcript"
    pa.field("text", pa.string(), nullable=False),
    pa.field("start", pa.float32()),
    pa.field("end", pa.float32()),
    # null where the job configures no such tokenizer / spaCy model (vlprep/stages/texts.py)
    pa.field("bert_ids", pa.list_(pa.int32())),  # MMPT: text[:96], <= 32 ids, no specials
    pa.field("clip_ids", pa.list_(pa.int32())),  # CLIP BPE with start/end tokens, <= 77
    pa.field("clip_pos", pa.list_(pa.int8())),  # per clip_ids token: 0 other, 1 noun, 2 verb
    pa.field("nouns", pa.list_(pa.string())),  # spaCy NOUN lemmas, lower case, in order
    pa.field("verbs", pa.list_(pa.string())),  # spaCy VERB lemmas, lower case, in order
])
