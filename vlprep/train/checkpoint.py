"""Checkpoints in safetensors: weights, optimizer state, and where training stands.

Each finished epoch is written to its own folder ``OUT/epoch-NNNN/`` (``model.safetensors``
with the method and its config in the metadata, ``optimizer.safetensors``,
``state.json``); then ``OUT/last.json`` is replaced atomically to point at it. A crash at
any moment leaves ``last.json`` naming a complete folder, so resuming never mixes epochs.
No pickles: tensors go through safetensors, everything else through JSON.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

LAST = "last.json"
KEEP = 2  # epoch folders kept besides the one last.json names


@dataclass
class Checkpoint:
    folder: Path
    epoch: int
    step: int
    meta: dict[str, Any]


def _atomic_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


def flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """torch optimizer state_dict -> (tensors by dotted name, JSON-ready rest)."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, Any] = {}
    for index, per_param in state["state"].items():
        for key, value in per_param.items():
            name = f"{index}.{key}"
            if torch.is_tensor(value):
                tensors[name] = value.detach().cpu().contiguous()
            else:
                scalars[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for name, value in [*tensors.items(), *rest["scalars"].items()]:
        index, key = name.split(".", 1)
        state.setdefault(int(index), {})[key] = value
    return {"state": state, "param_groups": rest["param_groups"]}


def save(out: Path, epoch: int, step: int, model: torch.nn.Module,
         optimizer: torch.optim.Optimizer | None, meta: dict[str, Any]) -> Path:
    """Write epoch `epoch`'s checkpoint and point last.json at it; returns the folder."""
    out.mkdir(parents=True, exist_ok=True)
    folder = out / f"epoch-{epoch:04d}"
    tmp = out / f".{folder.name}.{os.getpid()}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    weights = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    save_file(weights, str(tmp / "model.safetensors"),
              metadata={"vlprep.train": json.dumps(meta, sort_keys=True)})
    state = {"epoch": epoch, "step": step, "meta": meta}
    if optimizer is not None:
        tensors, rest = flatten_optimizer(optimizer.state_dict())
        save_file(tensors, str(tmp / "optimizer.safetensors"))
        state["optimizer"] = rest
    (tmp / "state.json").write_text(json.dumps(state, indent=1, sort_keys=True))
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
    _atomic_json(out / LAST, {"epoch": epoch, "folder": folder.name})
    old = sorted(p for p in out.glob("epoch-*") if p.is_dir() and p != folder)
    for stale in old[: max(0, len(old) - KEEP)]:
        shutil.rmtree(stale, ignore_errors=True)
    return folder


def latest(out: Path) -> Checkpoint | None:
    """The checkpoint last.json names, or None when training has not finished an epoch."""
    pointer = out / LAST
    if not pointer.exists():
        return None
    folder = out / json.loads(pointer.read_text())["folder"]
    state = json.loads((folder / "state.json").read_text())
    return Checkpoint(folder, state["epoch"], state["step"], state["meta"])


def resolve(path: Path) -> Path:
    """A model file from a run folder, an epoch folder or the file itself."""
    if path.is_file():
        return path
    if (path / LAST).exists():
        found = latest(path)
        assert found is not None
        return found.folder / "model.safetensors"
    if (path / "model.safetensors").exists():
        return path / "model.safetensors"
    raise FileNotFoundError(f"{path}: no checkpoint (expected a run folder with {LAST}, an "
                            "epoch folder or a model.safetensors file)")


def read_meta(model_file: Path) -> dict[str, Any]:
    """The method and config saved with the weights."""
    from safetensors import safe_open

    with safe_open(str(model_file), framework="pt") as f:
        raw = (f.metadata() or {}).get("vlprep.train")
    if raw is None:
        raise ValueError(f"{model_file}: not a vlprep training checkpoint")
    return json.loads(raw)


def load_weights(model: torch.nn.Module, model_file: Path) -> None:
    model.load_state_dict(load_file(str(model_file)))


def load_training(checkpoint: Checkpoint, model: torch.nn.Module,
                  optimizer: torch.optim.Optimizer) -> None:
    """Restore weights and optimizer state to resume after `checkpoint.epoch`."""
    load_weights(model, checkpoint.folder / "model.safetensors")
    state = json.loads((checkpoint.folder / "state.json").read_text())
    if "optimizer" in state:
        tensors = load_file(str(checkpoint.folder / "optimizer.safetensors"))
        optimizer.load_state_dict(unflatten_optimizer(tensors, state["optimizer"]))
