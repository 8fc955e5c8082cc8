"""Reading VinVL's published ``vinvl_vg_x152c4.pth`` strictly, and writing files like it.

The published file is maskrcnn_benchmark's checkpoint: ``{'model': state_dict, ...}`` (the
optimizer and scheduler beside it), or a bare state dict, with ``module.`` prefixes when it
was saved from DistributedDataParallel. It is read with ``weights_only=True`` (no pickled
code runs). Every key of the model must be there with its shape, and nothing else may be:
the first missing / unexpected / mis-shaped key is named in a one-line error. The attribute
head shares the box head's feature extractor, so a saved state dict holds res5 twice
(``attribute.feature_extractor.*`` besides ``roi_heads.box.feature_extractor.*``); the two
copies must agree, and a file without the copy is accepted (it is the same module).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from vlprep.errors import CheckpointError
from vlprep.models.checkpoint import read_state_dict
from vlprep.models.vinvl_net import X152C4, VinVLConfig, VinVLNet, cell_anchors

SHARED = "attribute.feature_extractor."
BOX_EXTRACTOR = "roi_heads.box.feature_extractor."


class VinVLCheckpointError(CheckpointError):
    """A file that is not a VinVL X152-C4 checkpoint in the published layout."""


def read_state(path: str | Path, sha256: str | None = None) -> dict[str, torch.Tensor]:
    """The state dict of a published-layout file (wrapper and ``module.`` undone)."""
    path = Path(path)
    if not path.is_file():
        raise VinVLCheckpointError(f"{path}: no such file")
    if sha256:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != sha256.lower():
            raise VinVLCheckpointError(f"{path}: sha256 {digest} is not the pinned {sha256}")
    state = read_state_dict(path, wrappers=("model",))  # weights_only, module. undone
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise VinVLCheckpointError(f"{path}: not a state dict (nor {{'model': state_dict}})")
    return state


def load_into(net: VinVLNet, state: dict[str, torch.Tensor], name: str) -> None:
    """Strict load: the model's keys exactly (the shared res5 copy optional), shapes equal."""
    own = net.state_dict()
    if not any(k.startswith(SHARED) for k in state):
        state = {**state, **{SHARED + k[len(BOX_EXTRACTOR):]: v for k, v in state.items()
                             if k.startswith(BOX_EXTRACTOR)}}
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing:
        raise VinVLCheckpointError(f"{name}: not a VinVL X152-C4 state dict: missing key "
                                   f"{missing[0]} ({len(missing)} missing)")
    if unexpected:
        raise VinVLCheckpointError(f"{name}: not a VinVL X152-C4 state dict: unexpected key "
                                   f"{unexpected[0]} ({len(unexpected)} unexpected)")
    for key, value in own.items():
        if tuple(state[key].shape) != tuple(value.shape):
            raise VinVLCheckpointError(f"{name}: {key} has shape {tuple(state[key].shape)}, "
                                       f"the model expects {tuple(value.shape)}")
    for key in own:
        if key.startswith(SHARED):
            box = BOX_EXTRACTOR + key[len(SHARED):]
            if not torch.equal(state[key], state[box]):
                raise VinVLCheckpointError(f"{name}: {key} differs from {box} (the attribute "
                                           "head shares the box head's feature extractor)")
    net.load_state_dict({k: v.float() for k, v in state.items()}, strict=True, assign=True)


def empty_net(config: VinVLConfig = X152C4) -> VinVLNet:
    """The modules without initialising 150M weights (they are all loaded, assigned)."""
    with torch.device("meta"):
        return VinVLNet(config)


def random_state(config: VinVLConfig = X152C4, seed: int = 0) -> dict[str, torch.Tensor]:
    """Seeded random weights in the published key layout (tests and demos only); frozen BN
    statistics are random too, so every buffer matters."""
    generator = torch.Generator().manual_seed(seed)
    state = {k: torch.empty(v.shape) for k, v in empty_net(config).state_dict().items()
             if not k.startswith(SHARED)}
    state["rpn.anchor_generator.cell_anchors.0"] = cell_anchors(
        config.anchor_stride, config.anchor_sizes, config.aspect_ratios)
    for key, value in state.items():
        if "cell_anchors" in key:
            continue
        if key.endswith("running_var"):
            value.uniform_(0.5, 2.0, generator=generator)
        elif key.endswith("bn3.weight"):  # small residual branches: bounded activations
            value.uniform_(0.1, 0.3, generator=generator)
        elif key.endswith(("bn1.weight", "bn2.weight", "downsample.1.weight")):
            value.uniform_(0.5, 1.0, generator=generator)
        elif key.endswith(("running_mean", ".bias")):
            value.normal_(0.0, 0.05, generator=generator)
        else:  # conv / linear / embedding weights
            fan_in = value[0].numel()
            value.normal_(0.0, (1.0 / fan_in) ** 0.5, generator=generator)
    for key in [k for k in state if k.startswith(BOX_EXTRACTOR)]:
        state[SHARED + key[len(BOX_EXTRACTOR):]] = state[key]  # the same tensors, as saved
    return state


def save_published(state: dict[str, torch.Tensor], path: str | Path, *,
                   wrapped: bool = True, prefix: str = "") -> Path:
    """Write `state` as maskrcnn_benchmark saves it: ``{'model': ...}`` (or bare), keys
    optionally prefixed (``module.`` from DistributedDataParallel)."""
    path = Path(path)
    body = {prefix + k: v for k, v in state.items()}  # shared tensors stay shared
    torch.save({"model": body, "iteration": 0} if wrapped else body, path)
    return path
