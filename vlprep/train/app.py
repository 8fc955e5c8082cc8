"""`vlprep train` and `vlprep eval`, as functions the CLI calls (and tests can too)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import yaml

from vlprep.train import checkpoint
from vlprep.train.method import Method, TrainConfig, resolve_device
from vlprep.train.store_reader import StoreReader

log = logging.getLogger("vlprep")


METHODS = {"videoclip": ("vlprep.train.videoclip", "VideoClip"),
           "alpro": ("vlprep.train.alpro", "Alpro"),
           "stoa": ("vlprep.train.stoa", "Stoa")}


def methods() -> list[str]:
    return list(METHODS)


def method_class(name: str) -> type[Method]:
    """The class of a method, importing only its own module (they pull in different
    libraries: FAISS, torchvision, transformers)."""
    import importlib

    if name not in METHODS:
        raise ValueError(f"unknown method {name!r} (known: {', '.join(METHODS)})")
    module, cls = METHODS[name]
    return getattr(importlib.import_module(module), cls)


def parse_options(assignments: list[str]) -> dict[str, Any]:
    """`KEY=VALUE` pairs, values parsed as YAML scalars (numbers, booleans)."""
    out: dict[str, Any] = {}
    for item in assignments:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--set {item}: expected KEY=VALUE")
        out[key.replace("-", "_")] = yaml.safe_load(raw) if raw else ""
    return out


def build_method(name: str, store: str, options: dict[str, Any] | None = None,
                 saved: dict[str, Any] | None = None) -> Method:
    return method_class(name)(StoreReader(store), options, saved)


def run_train(name: str, cfg: TrainConfig) -> dict[str, Any]:
    from vlprep.train.loop import train

    method = build_method(name, cfg.store, cfg.options)
    return train(method, cfg)


def run_eval(run: str | Path, store: str, split: str | None = None,
             eval_fraction: float | None = None, batch_size: int = 256,
             device: str = "auto", threads: int = 1) -> dict[str, Any]:
    """Retrieval metrics of a checkpoint (a run folder, an epoch folder or a model file) on
    `store`; the held-out split is the one the run trained with unless overridden."""
    import torch

    from vlprep.train.loop import evaluate

    if threads > 0:
        torch.set_num_threads(threads)
    model_file = checkpoint.resolve(Path(run))
    meta = checkpoint.read_meta(model_file)
    trained = meta.get("train", {})
    method = build_method(meta["method"], store, saved=meta)
    model = method.build_model()
    checkpoint.load_weights(model, model_file)
    model.to(resolve_device(device))
    cfg = TrainConfig(store=store, out=str(model_file.parent), batch_size=batch_size,
                      eval_fraction=trained.get("eval_fraction", 0.2) if eval_fraction is None
                      else eval_fraction, split_seed=trained.get("split_seed", 0),
                      device=device, quiet=True)
    split = split or ("eval" if cfg.eval_fraction > 0 else "all")
    return {"method": meta["method"], "checkpoint": str(model_file), "store": store,
            "split": split, **evaluate(method, model, cfg, split)}
