"""The one checkpoint reader of the frozen backbones: published weight files as they are.

- :func:`read_state_dict`: a ``.pth``/``.pt`` (``torch.load(weights_only=True)``: no pickled
  code runs) or ``.safetensors`` file; ``{"model": ...}`` / ``{"state_dict": ...}`` wrappers
  and DataParallel's ``module.`` prefix are undone.
- :func:`load_into`: a state dict into a built module, refusing missing, unexpected or
  mis-shaped keys with one line naming the first (so a wrong file never half-loads).
- :func:`read_hf_model`: a Hugging Face model directory (``config.json`` + safetensors or a
  ``pytorch_model.bin``), local files only.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
from torch import nn

from vlprep.errors import CheckpointError

UNUSED_IN_EVAL = ("num_batches_tracked",)  # BatchNorm's step counter: absent in many files


def read_state_dict(path: str | Path, wrappers: tuple[str, ...] = ("model", "state_dict"),
                    mmap: bool = False) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        state: Any = load_file(str(path))
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
        except Exception as e:  # noqa: BLE001 - any unreadable file is the same user error
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise CheckpointError(f"{path}: not a loadable state dict (torch.load with "
                                  f"weights_only: {reason})") from None
    for wrapper in wrappers:
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    return {str(k).removeprefix("module."): v for k, v in state.items()}


def load_into(model: nn.Module, state: dict[str, torch.Tensor], where: str, what: str,
              ignore: Callable[[str], bool] = lambda key: False) -> nn.Module:
    """Load `state` (less the keys `ignore` accepts) into `model` strictly, fp32, eval mode;
    `where` (the file) and `what` (the layout expected) go into the one-line error."""
    own = model.state_dict()
    given = {k: v for k, v in state.items() if not ignore(k)}
    missing = sorted(k for k in set(own) - set(given) if not k.endswith(UNUSED_IN_EVAL))
    unexpected = sorted(k for k in set(given) - set(own) if not k.endswith(UNUSED_IN_EVAL))
    if missing or unexpected:
        detail = (f"{len(missing)} missing keys (e.g. {missing[0]})" if missing else
                  f"{len(unexpected)} unexpected keys (e.g. {unexpected[0]})")
        raise CheckpointError(f"{where}: not {what}: {detail}")
    for key in own.keys() & given.keys():
        if tuple(own[key].shape) != tuple(given[key].shape):
            raise CheckpointError(f"{where}: {key} has shape {tuple(given[key].shape)}, "
                                  f"expected {tuple(own[key].shape)}")
    model.load_state_dict({k: v for k, v in given.items() if k in own}, strict=False)
    return model.float().eval()


@contextlib.contextmanager
def quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-key load report and progress bars (unused keys of a bigger
    checkpoint are expected); missing keys are checked by us."""
    from transformers.utils import logging as hf_logging

    verbosity = hf_logging.get_verbosity()
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def read_hf_model(checkpoint: str | Path, model_cls: Any, config_cls: Any, what: str,
                  model_type: str | None = None) -> tuple[nn.Module, list[str]]:
    """A transformers model of `model_cls` from a local directory, fp32, eval mode, and the
    names of the parameters the directory did not hold (the caller decides what may be)."""
    root = Path(checkpoint)
    if not (root / "config.json").is_file():
        raise CheckpointError(f"{root}: not a {what} directory (no config.json)")
    if model_type is not None:
        found = json.loads((root / "config.json").read_text()).get("model_type")
        if found != model_type:
            raise CheckpointError(f"{root}: a {found!r} model; {what} needs model_type "
                                  f"{model_type}")
    with quiet_transformers():
        if any(root.glob("*.safetensors")) or (root / "model.safetensors.index.json").is_file():
            try:
                model, info = model_cls.from_pretrained(
                    root, use_safetensors=True, local_files_only=True, dtype=torch.float32,
                    output_loading_info=True)
            except (OSError, RuntimeError, ValueError) as e:
                raise CheckpointError(f"{root}: cannot be loaded as {what} "
                                      f"({str(e).splitlines()[0]})") from None
            missing = list(info["missing_keys"])
        elif (root / "pytorch_model.bin").is_file():
            model = model_cls(config_cls.from_pretrained(root))
            state = read_state_dict(root / "pytorch_model.bin", wrappers=())
            own = model.state_dict()
            missing = [k for k in own if k not in state]
            model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
        else:
            raise CheckpointError(f"{root}: no model.safetensors or pytorch_model.bin")
    return model.float().eval(), [k for k in missing if not k.endswith("position_ids")]
