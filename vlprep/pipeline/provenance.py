"""Provenance: the recipe that made a store, recorded in it and checked on every run.

A recipe is what decides the values in the tables: each stage's kind, name and options (minus
options that only change speed, such as batch sizes or the device), the weights it ran (the
checkpoint's sha256, or `random` with its seed) and the schema version. It is written to
``STORE/_recipe.json`` on the first run and into every Parquet file's metadata; a later run
whose recipe differs is refused, so one store never mixes features made two ways.
"""

from __future__ import annotations

import json
from typing import Any

import vlprep
from vlprep.errors import RecipeError
from vlprep.models.checksums import checkpoint_sha256, file_sha256
from vlprep.schemas import SCHEMA_VERSION
from vlprep.stages.base import StageOptions, WeightsOptions
from vlprep.store.layout import RECIPE_FILE

__all__ = ["RECIPE_FILE", "RecipeError", "checkpoint_sha256", "file_sha256"]


def weights_of(options: StageOptions, cache: dict[str, str] | None = None
               ) -> dict[str, Any] | None:
    """What weights a stage runs: {init: random, seed} or {checkpoint, sha256}; checks the
    stage's `sha256` option, so a wrong checkpoint stops the job before any work. None for
    stages without weights (their options are no WeightsOptions)."""
    if not isinstance(options, WeightsOptions):
        return None
    checkpoint = options.checkpoint
    if options.init == "random":
        return {"init": "random", "seed": options.seed}
    if not checkpoint:
        return None
    cache = {} if cache is None else cache
    if checkpoint not in cache:
        cache[checkpoint] = checkpoint_sha256(checkpoint)
    digest = cache[checkpoint]
    expected = options.sha256
    if expected and expected.lower() != digest:
        raise RecipeError(f"checkpoint {checkpoint}: sha256 {digest} does not match the "
                          f"expected {expected}")
    return {"checkpoint": str(checkpoint), "sha256": digest}


def stage_recipe(spec: Any, cache: dict[str, str] | None = None) -> dict[str, Any]:
    options = spec.options.model_dump(mode="json", by_alias=True)
    speed = spec.options.speed_options()
    recipe = {"name": spec.name, "kind": spec.cls.kind,
              "options": {k: v for k, v in sorted(options.items()) if k not in speed}}
    if spec.is_aggregate:
        recipe["aggregate"] = True
    weights = weights_of(spec.options, cache)
    if weights is not None:
        recipe["weights"] = weights
    return recipe


def job_recipe(job: Any) -> dict[str, Any]:
    cache: dict[str, str] = {}
    return {
        "schema_version": SCHEMA_VERSION,
        "partition_size": job.file.partition_size,
        "stages": [stage_recipe(spec, cache) for spec in job.stages],
        "vlprep_version": vlprep.__version__,
        "named_recipe": job.file.recipe,
    }


def recipe_json(recipe: dict[str, Any]) -> str:
    return json.dumps(recipe, sort_keys=True, separators=(",", ":"))


def first_difference(old: Any, new: Any, where: str = "") -> str | None:
    """The first key path where two recipes differ, as `stages.sample.options.fps: 30 -> 15`."""
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new)):
            diff = first_difference(old.get(key), new.get(key), f"{where}.{key}" if where else key)
            if diff:
                return diff
        return None
    if isinstance(old, list) and isinstance(new, list):
        if len(old) != len(new):
            names = [s.get("name") if isinstance(s, dict) else s for s in old], \
                [s.get("name") if isinstance(s, dict) else s for s in new]
            return f"{where}: {names[0]} -> {names[1]}"
        for i, (a, b) in enumerate(zip(old, new, strict=True)):
            label = a.get("name", i) if isinstance(a, dict) else i
            diff = first_difference(a, b, f"{where}.{label}")
            if diff:
                return diff
        return None
    return None if old == new else f"{where}: {old!r} -> {new!r}"


def comparable(recipe: dict[str, Any]) -> dict[str, Any]:
    """The parts of a recipe that must match to append to a store (not the vlprep version)."""
    return {k: v for k, v in recipe.items() if k != "vlprep_version"}
