"""What the store's recipe (``STORE/_recipe.json``) tells training about its features.

The pipeline records every stage's options and weights; training reads them instead of
asking the user again: which tokenizer made the token ids, which frozen CLIP made the frame
embeddings (to export ALPRO's prompter), and the side of the sampled frames that pixel boxes
refer to.
"""

from __future__ import annotations

import json
from typing import Any

from vlprep.store.layout import RECIPE_FILE
from vlprep.train.store_reader import StoreReader


def load_recipe(reader: StoreReader) -> dict[str, Any]:
    """The recipe, or an empty one for stores made before recipes were recorded."""
    path = reader.store.path(RECIPE_FILE)
    if reader.store.fs.get_file_info(path).type.name != "File":
        return {"stages": []}
    return json.loads(reader.store.read_bytes(path))


def stages_of(recipe: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [s for s in recipe.get("stages", []) if s.get("kind") == kind]


def stage_of(recipe: dict[str, Any], kind: str) -> dict[str, Any] | None:
    """The first stage of `kind` (jobs normally have one)."""
    found = stages_of(recipe, kind)
    return found[0] if found else None


def frame_side(recipe: dict[str, Any], key: str = "frames") -> int | None:
    """Side in pixels of the square frames the sample stage stored under `key`."""
    for stage in stages_of(recipe, "sample"):
        options = stage.get("options", {})
        if options.get("key", "frames") == key:
            return int(options.get("crop") or options.get("size") or 0) or None
    return None


def tokenizer_spec(recipe: dict[str, Any], kind: str) -> str | None:
    """The tokenizer option (`bert_tokenizer` / `clip_tokenizer`) of the texts stage."""
    stage = stage_of(recipe, "texts")
    return None if stage is None else stage.get("options", {}).get(f"{kind}_tokenizer")
