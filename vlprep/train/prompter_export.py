"""Export a ``--vtc-only`` ALPRO run as the prompter checkpoint the prompter stage loads.

The video side of the export is the frozen CLIP that made the store's frame embeddings, so
it is rebuilt from the store's recipe: the same seeded random tower for ``init: random``,
or the checkpoint directory (checked against the sha256 the recipe recorded). The BERT
tokenizer is the one the recipe's texts stage used, so prompts tokenize to the ids trained on.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from vlprep.errors import ExportError  # noqa: F401 - re-exported
from vlprep.train.alpro_model import AlproModel, export_prompter
from vlprep.train.recipe import load_recipe, stage_of
from vlprep.train.store_reader import StoreReader
from vlprep.train.text import Vocab

log = logging.getLogger("vlprep")


def frozen_clip(recipe: dict[str, Any]) -> Any:
    """The CLIPVisionModelWithProjection the recipe's clip stage ran."""
    from vlprep.models.clip import load_clip, random_clip

    stage = stage_of(recipe, "clip")
    if stage is None:
        raise ExportError("the store's recipe has no clip stage")
    weights, options = stage.get("weights") or {}, stage.get("options", {})
    if weights.get("init") == "random":
        return random_clip(int(weights.get("seed") or 0), options.get("model_config"))
    checkpoint = weights.get("checkpoint")
    if not checkpoint or str(checkpoint).endswith(".onnx") or not Path(checkpoint).is_dir():
        raise ExportError(f"the clip stage's checkpoint {checkpoint!r} is not a readable "
                          "Hugging Face directory here")
    from vlprep.models.checksums import checkpoint_sha256

    if weights.get("sha256") and checkpoint_sha256(checkpoint) != weights["sha256"]:
        raise ExportError(f"{checkpoint} changed since the store was made (sha256 differs)")
    return load_clip(checkpoint)


def export_for_store(reader: StoreReader, model: AlproModel, vocab: Vocab,
                     directory: Path) -> Path | None:
    """Write `directory` (replacing it whole); None with a warning when it cannot be done."""
    from vlprep.models.tokenizers import load_tokenizer

    try:
        if vocab.tokenizer is None:
            raise ExportError("the BERT ids' tokenizer could not be loaded at training time")
        clip = frozen_clip(load_recipe(reader))
        tokenizer = load_tokenizer(vocab.tokenizer, "bert")
        if len(tokenizer) != vocab.size:
            raise ExportError(f"tokenizer {vocab.tokenizer} has {len(tokenizer)} ids, "
                              f"the model {vocab.size}")
        tmp = directory.with_name(f".{directory.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        export_prompter(model, clip, tokenizer, tmp)
        shutil.rmtree(directory, ignore_errors=True)
        os.replace(tmp, directory)
        return directory
    except ExportError as e:
        log.warning("alpro --vtc-only: no prompter export: %s", e)
        return None
