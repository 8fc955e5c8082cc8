"""Store table schemas: declared once, used by writers, readers and tests."""

from vlprep.schemas.fields import SCHEMA_VERSION, VIDEO_ID, fp16_vector, with_vector_dims
from vlprep.schemas.tables import CLIP_FRAMES, ERRORS, TABLES, TEXTS, VIDEOS

__all__ = [
    "SCHEMA_VERSION", "VIDEO_ID", "fp16_vector", "with_vector_dims",
    "VIDEOS", "ERRORS", "CLIP_FRAMES", "TEXTS", "TABLES",
]
