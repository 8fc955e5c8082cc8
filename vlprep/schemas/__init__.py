"""Store table schemas: declared once, used by writers, readers and tests.

Each area declares its tables in its own module; every table is listed once in ``TABLES``.
"""

import pyarrow as pa

from vlprep.schemas.fields import SCHEMA_VERSION, VIDEO_ID, fp16_vector, with_vector_dims
from vlprep.schemas.tables import CLIP_FRAMES, ERRORS, TEXTS, VIDEOS
from vlprep.schemas.text_features import ENTITIES, SOFT_LABELS
from vlprep.schemas.video_features import REGIONS, S3D, TRAJECTORIES


def _by_name(*schemas: pa.Schema) -> dict[str, pa.Schema]:
    return {s.metadata[b"vlprep.table"].decode(): s for s in schemas}


TABLES: dict[str, pa.Schema] = _by_name(
    VIDEOS, ERRORS, CLIP_FRAMES, TEXTS,
    ENTITIES, SOFT_LABELS,
    S3D, REGIONS, TRAJECTORIES,
)

__all__ = [
    "SCHEMA_VERSION", "VIDEO_ID", "fp16_vector", "with_vector_dims",
    "VIDEOS", "ERRORS", "CLIP_FRAMES", "TEXTS", "TABLES",
    "ENTITIES", "SOFT_LABELS",
    "S3D", "REGIONS", "TRAJECTORIES",
]
