"""Schemas of the corpus entity vocabulary and of the ALPRO prompter's soft labels.

`entities` is corpus-wide: its rows belong to no single video, so their ``video_id`` (the key
every table shares) is the empty string. Entity ids used by `soft_labels` are `rank`s.
"""

from __future__ import annotations

import pyarrow as pa

from vlprep.schemas.fields import table_schema

# The video_id of corpus-wide rows (entities): the whole corpus, no single video.
CORPUS = ""

ENTITIES = table_schema("entities", [
    pa.field("rank", pa.int32(), nullable=False),  # 0 = most frequent; the entity id
    pa.field("lemma", pa.string(), nullable=False),
    pa.field("count", pa.int64(), nullable=False),  # occurrences as a noun in `texts`
])

SOFT_LABELS = table_schema("soft_labels", [
    pa.field("crop", pa.int16(), nullable=False),  # 0..K-1 within the video
    # the crop box in pixels of the sampled frames (size x size), snapped to patches
    pa.field("left", pa.int32(), nullable=False),
    pa.field("top", pa.int32(), nullable=False),
    pa.field("width", pa.int32(), nullable=False),
    pa.field("height", pa.int32(), nullable=False),
    pa.field("frame_indices", pa.list_(pa.int32()), nullable=False),  # same crop on each
    pa.field("templates", pa.string(), nullable=False),  # "video" | "image" prompts
    pa.field("entity_ids", pa.list_(pa.int32()), nullable=False),  # top-k, best first
    pa.field("probs", pa.list_(pa.float32()), nullable=False),  # their probabilities
    pa.field("top_prob", pa.float32(), nullable=False),
    pa.field("low_confidence", pa.bool_(), nullable=False),  # top_prob < threshold (0.2)
    # every entity's probability, fp16 (option store_full; null otherwise)
    pa.field("probs_full", pa.list_(pa.float16())),
])
