"""An on-disk cache of prompt ensembles: 1,000 entities x 12 templates cost minutes on CPU,
and every prompter worker of every run over the same corpus computes the same E x 256 matrix.

The key is everything the matrix depends on: the checkpoint's sha256, the entities in order,
the templates, the tokenizer's vocabulary and the settings that change the numbers
(precision, ...). A file is ``<key>.npy``, written to a temporary name and renamed, so a
worker never reads half a file and concurrent writers of the same key are harmless.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("vlprep")

FORMAT = "vlprep.prompt-ensemble.v1"


def default_directory() -> Path:
    """$VLPREP_CACHE/prompts, else $XDG_CACHE_HOME/vlprep/prompts, else ~/.cache/..."""
    if os.environ.get("VLPREP_CACHE"):
        return Path(os.environ["VLPREP_CACHE"]) / "prompts"
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "vlprep" / "prompts"


def vocabulary_digest(tokenizer) -> str:
    """sha256 of the tokenizer's (token, id) pairs and its class: other ids, other key."""
    vocab = sorted(tokenizer.get_vocab().items(), key=lambda kv: kv[1])
    payload = json.dumps([type(tokenizer).__name__, vocab], ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def cache_key(checkpoint_sha256: str, entities: Sequence[str], templates: Sequence[str],
              **settings: Any) -> str:
    payload = json.dumps({"format": FORMAT, "checkpoint": checkpoint_sha256,
                          "entities": list(entities), "templates": list(templates),
                          "settings": settings}, sort_keys=True, ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def cached(directory: str | Path, key: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """The array stored under `key`, or `compute()` stored there first."""
    root = Path(directory)
    path = root / f"{key}.npy"
    if path.is_file():
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:  # a damaged file: recompute and replace it
            log.warning("prompt cache %s unreadable (%s): recomputing", path, e)
    value = np.ascontiguousarray(compute(), dtype=np.float32)
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=root, prefix=f".{key}.", suffix=".tmp")
        with os.fdopen(fd, "wb") as f:
            np.save(f, value, allow_pickle=False)
        os.replace(tmp, path)
    except OSError as e:  # a read-only or full disk costs time, not the run
        log.warning("prompt cache %s not written (%s)", root, e)
    return value
