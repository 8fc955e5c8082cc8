"""Checksums of checkpoints: what a recipe records about the weights a stage ran."""

from __future__ import annotations

import hashlib
from pathlib import Path

from vlprep.errors import RecipeError


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def checkpoint_sha256(path: str | Path) -> str:
    """sha256 of a checkpoint file (as `sha256sum` prints it), or of a model directory
    (over its files' relative paths and contents, in sorted order)."""
    path = Path(path)
    if path.is_file():
        return file_sha256(path)
    if not path.is_dir():
        raise RecipeError(f"checkpoint {path}: no such file or directory")
    digest = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(str(file.relative_to(path)).encode() + b"\0")
        digest.update(file_sha256(file).encode() + b"\n")
    return digest.hexdigest()
