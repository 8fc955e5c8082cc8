"""CLIP vision tower with its projection (Hugging Face `transformers`), and frame embedding.

Loads from a local model directory (``config.json`` + safetensors, or a ``pytorch_model.bin``
read with ``weights_only=True``); a full CLIPModel directory works too, its text tower is
ignored. ``random_clip`` builds seeded random weights for demos and tests: the same seed gives
the same weights in every process, and a loud warning says the features mean nothing.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

from vlprep.errors import CheckpointError  # noqa: F401 - re-exported
from vlprep.models.accel import Precision, autocast, to_device
from vlprep.models.accel import resolve_device as resolve_device  # re-exported
from vlprep.models.checkpoint import read_hf_model

log = logging.getLogger("vlprep")

# The normalisation CLIP was trained with (OpenAI's preprocessing), on RGB in [0, 1].
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)

# ViT-B/16-like vision tower (what STOA-VLP uses); `config` overrides are merged over it.
DEFAULT_VISION_CONFIG: dict[str, Any] = {
    "hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12,
    "num_attention_heads": 12, "patch_size": 16, "image_size": 224, "projection_dim": 512,
    "hidden_act": "quick_gelu",
}


def load_clip(checkpoint: str | Path) -> CLIPVisionModelWithProjection:
    """The vision tower + projection from a local directory, fp32, in eval mode, on CPU."""
    model, missing = read_hf_model(checkpoint, CLIPVisionModelWithProjection, CLIPVisionConfig,
                                   "a CLIP model")
    if missing:
        raise CheckpointError(f"{checkpoint}: weights missing for {len(missing)} parameters "
                              f"(e.g. {missing[0]}); not a CLIP vision checkpoint?")
    return model


def random_clip(seed: int = 0, config: dict[str, Any] | None = None
                ) -> CLIPVisionModelWithProjection:
    """Seeded random weights (deterministic across processes), for demos and tests only."""
    cfg = CLIPVisionConfig(**{**DEFAULT_VISION_CONFIG, **(config or {})})
    with torch.random.fork_rng(devices=[]):  # leave the caller's RNG state untouched
        torch.manual_seed(seed)
        model = CLIPVisionModelWithProjection(cfg)
    log.warning("CLIP is RANDOMLY INITIALISED (seed %d): its embeddings are NOT meaningful "
                "features; set a checkpoint for real ones", seed)
    return model.float().eval()


def embedding_dim(model: CLIPVisionModelWithProjection) -> int:
    return int(model.config.projection_dim)


class ClipFeatures(nn.Module):
    """The vision tower run block by block, so that the tokens entering one block can be
    returned next to the projected embedding in the same pass (and exported to ONNX as one
    graph). Input: CLIP-normalised pixels; output: (L2-normalised embedding, patch tokens).

    ``patch_block`` is the block whose *input* tokens are returned (negative counts from the
    end: -1 = the tokens entering the last block, what STOA-VLP pools objects from), without
    the CLS token; ``patch_grid`` average-pools the patch grid to grid x grid (None: full).
    """

    def __init__(self, model: CLIPVisionModelWithProjection, patch_block: int | None = None,
                 patch_grid: int | None = None):
        super().__init__()
        self.model = model
        layers = len(model.vision_model.encoder.layers)
        if patch_block is not None and not -layers <= patch_block < layers:
            raise ValueError(f"patch_block {patch_block} out of range for {layers} blocks")
        self.patch_block = None if patch_block is None else patch_block % layers
        self.patch_grid = patch_grid
        self.side = int(model.config.image_size) // int(model.config.patch_size)

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        vision = self.model.vision_model
        x = vision.pre_layrnorm(vision.embeddings(pixels))
        patches = x[:, :0]
        for i, layer in enumerate(vision.encoder.layers):
            if i == self.patch_block:
                patches = self._pool(x[:, 1:])
            x = layer(x, None)
        pooled = vision.post_layernorm(x[:, 0])
        embeds = F.normalize(self.model.visual_projection(pooled), dim=-1)
        return embeds, patches

    def _pool(self, tokens: torch.Tensor) -> torch.Tensor:
        if self.patch_grid is None:
            return tokens
        grid = tokens.transpose(1, 2).unflatten(2, (self.side, self.side))
        grid = F.adaptive_avg_pool2d(grid, self.patch_grid)
        return grid.flatten(2).transpose(1, 2)


def check_frames(frames: np.ndarray, size: int) -> np.ndarray:
    """uint8 N x size x size x 3, or a ValueError that says how to fix the sampling."""
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames N x H x W x 3, got {frames.dtype} "
                         f"{frames.shape}")
    if frames.shape[1:3] != (size, size):
        raise ValueError(f"frames are {frames.shape[1]}x{frames.shape[2]} but the model takes "
                         f"{size}x{size}: sample them at that size")
    return frames


def normalise(x: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """uint8 N x H x W x 3 -> CLIP-normalised float N x 3 x H x W (a channels-last view).

    The pixels are normalised where they lie (channels last; convolutions take that layout
    as is). With `out` (a float tensor of at least N frames, reused across calls) the work is
    one conversion into it and two in-place passes: on CPU a fresh float tensor of a batch
    of frames costs more in page faults than the arithmetic (about 5x). Without it (ONNX
    export), one fused multiply-add.
    """
    std = torch.tensor(CLIP_STD, device=x.device)
    scale = 1.0 / (255.0 * std)
    shift = -torch.tensor(CLIP_MEAN, device=x.device) / std
    if out is None:
        return torch.addcmul(shift, x.float(), scale).permute(0, 3, 1, 2)
    out = out[:len(x)]
    out.copy_(x)
    # per channel, over rows of W pixels: a size-3 last dimension would not vectorise
    rows = out.view(-1, x.shape[2] * 3)
    rows.mul_(scale.repeat(x.shape[2])).add_(shift.repeat(x.shape[2]))
    return out.permute(0, 3, 1, 2)


def _scratch(features: ClipFeatures, frames: torch.Tensor) -> torch.Tensor | None:
    """A float buffer for `normalise`, kept on the module and grown as needed (CPU only: the
    CUDA caching allocator already reuses memory)."""
    if frames.device.type != "cpu":
        return None
    buffer = getattr(features, "_scratch_pixels", None)
    if buffer is None or buffer.shape[0] < len(frames) or buffer.shape[1:] != frames.shape[1:]:
        buffer = torch.empty(frames.shape, dtype=torch.float32)
        features._scratch_pixels = buffer
    return buffer


def clip_features(features: ClipFeatures, frames: np.ndarray,
                  device: str | torch.device | None = None, batch_size: int = 64,
                  precision: Precision = "auto") -> tuple[np.ndarray, np.ndarray]:
    """(float32 N x D unit-norm embeddings, float32 N x P x hidden patch tokens; P = 0 when
    the module returns none) of uint8 N x H x W x 3 RGB frames of the model's image size.

    Runs in chunks of `batch_size` under inference mode; on CUDA through pinned memory and
    with autocast (bf16 where supported, fp16 otherwise; `precision` overrides).
    """
    model = features.model
    frames = check_frames(frames, int(model.config.image_size))
    device = torch.device(device) if device is not None else next(model.parameters()).device
    embeds = [np.zeros((0, embedding_dim(model)), np.float32)]
    patches = [np.zeros((0, 0, int(model.config.hidden_size)), np.float32)]
    with torch.inference_mode(), autocast(device, precision):
        for start in range(0, len(frames), batch_size):
            pixels = to_device(frames[start:start + batch_size], device)
            x = normalise(pixels, _scratch(features, pixels))
            emb, tokens = features(x)
            embeds.append(emb.float().cpu().numpy())
            patches.append(tokens.float().cpu().numpy())
    if len(patches) > 1:
        patches = patches[1:]
    return np.concatenate(embeds), np.concatenate(patches)


def embed_frames(model: CLIPVisionModelWithProjection, frames: np.ndarray,
                 device: str | torch.device | None = None, batch_size: int = 64,
                 precision: Precision = "auto") -> np.ndarray:
    """L2-normalised projected CLS embeddings, float32 N x D, of uint8 N x H x W x 3 RGB frames.

    Frames must already be the model's image size (the sample stage resizes and crops); only
    CLIP's mean/std normalisation happens here.
    """
    return clip_features(ClipFeatures(model), frames, device, batch_size, precision)[0]


class _FromFrames(nn.Module):
    """uint8 frames in, features out: the graph that is exported, normalisation included."""

    def __init__(self, features: ClipFeatures):
        super().__init__()
        self.features = features

    def forward(self, frames: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.features(normalise(frames))


def export_clip_onnx(features: ClipFeatures, path: str | Path) -> Path:
    """Export frames (uint8 N x S x S x 3, any N) -> (embeddings, patch tokens) to ONNX."""
    from vlprep.models.onnx_runtime import export

    model = features.model
    size = int(model.config.image_size)
    example = torch.zeros((2, size, size, 3), dtype=torch.uint8)
    meta = {"model": "clip", "image_size": size, "projection_dim": embedding_dim(model),
            "hidden_size": int(model.config.hidden_size), "patch_block": features.patch_block,
            "num_layers": int(model.config.num_hidden_layers),
            "patch_grid": features.patch_grid}
    return export(_FromFrames(features).float().cpu(), (example,), path, ["frames"],
                  ["embeddings", "patch_tokens"],
                  {"frames": {0: "n"}, "embeddings": {0: "n"}, "patch_tokens": {0: "n"}}, meta)


def onnx_clip_features(session: Any, frames: np.ndarray, batch_size: int = 64
                       ) -> tuple[np.ndarray, np.ndarray]:
    """:func:`clip_features` through an exported model (an ``OnnxSession``)."""
    meta = session.metadata
    frames = check_frames(frames, int(meta["image_size"]))
    embeds = [np.zeros((0, int(meta["projection_dim"])), np.float32)]
    patches = [np.zeros((0, 0, int(meta["hidden_size"])), np.float32)]
    for start in range(0, len(frames), batch_size):
        out = session.run(frames=frames[start:start + batch_size])
        embeds.append(out["embeddings"])
        patches.append(out["patch_tokens"])
    if len(patches) > 1:
        patches = patches[1:]
    return np.concatenate(embeds), np.concatenate(patches)
