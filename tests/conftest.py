"""Shared fixtures: bad input files and a tiny CLIP checkpoint written to disk once."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

# A CLIP vision tower small enough to run in milliseconds on CPU; image size stays 224.
TINY_CLIP: dict[str, Any] = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
    "intermediate_size": 37, "patch_size": 16, "image_size": 224, "projection_dim": 16,
}


@pytest.fixture
def tiny_clip_config() -> dict[str, Any]:
    return dict(TINY_CLIP)


@pytest.fixture(scope="session")
def tiny_clip_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """random_clip(seed=0, TINY_CLIP) saved as a Hugging Face directory (safetensors)."""
    from vlprep.models.clip import random_clip

    path = tmp_path_factory.mktemp("tiny-clip")
    random_clip(seed=0, config=TINY_CLIP).save_pretrained(path, safe_serialization=True)
    return path


@pytest.fixture
def zero_byte_file(tmp_path: Path) -> Path:
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    return path


@pytest.fixture
def text_file_named_mp4(tmp_path: Path) -> Path:
    path = tmp_path / "notes.mp4"
    path.write_text("this is a text file, not a video\n")
    return path
