"""CLIP vision tower with its projection (Hugging Face `transformers`), and frame embedding.

Loads from a local model directory (``config.json`` + safetensors, or a ``pytorch_model.bin``
read with ``weights_only=True``); a full CLIPModel directory works too, its text tower is
ignored. ``random_clip`` builds seeded random weights for demos and tests: the same seed gives
the same weights in every process, and a loud warning says the features mean nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection
from transformers.utils import logging as hf_logging

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


class CheckpointError(ValueError):
    """A checkpoint directory that cannot give a complete CLIP vision tower."""


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Hide transformers' per-key load report and progress bars (the text tower's keys of a
    full CLIP checkpoint are expected to be unused); missing keys are checked by us."""
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


def load_clip(checkpoint: str | Path) -> CLIPVisionModelWithProjection:
    """The vision tower + projection from a local directory, fp32, in eval mode, on CPU."""
    root = Path(checkpoint)
    if not (root / "config.json").is_file():
        raise CheckpointError(f"{root}: not a CLIP model directory (no config.json)")
    with _quiet_transformers():
        if any(root.glob("*.safetensors")) or (root / "model.safetensors.index.json").is_file():
            model, info = CLIPVisionModelWithProjection.from_pretrained(
                root, use_safetensors=True, local_files_only=True, dtype=torch.float32,
                output_loading_info=True)
            missing = list(info["missing_keys"])
        elif (root / "pytorch_model.bin").is_file():
            model = CLIPVisionModelWithProjection(CLIPVisionConfig.from_pretrained(root))
            state = torch.load(root / "pytorch_model.bin", map_location="cpu",
                               weights_only=True)
            own = model.state_dict()
            missing = [k for k in own if k not in state]
            model.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
        else:
            raise CheckpointError(f"{root}: no model.safetensors or pytorch_model.bin")
    if missing:
        raise CheckpointError(f"{root}: weights missing for {len(missing)} parameters "
                              f"(e.g. {missing[0]}); not a CLIP vision checkpoint?")
    return model.float().eval()


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


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' means the GPU when there is one."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def embedding_dim(model: CLIPVisionModelWithProjection) -> int:
    return int(model.config.projection_dim)


def embed_frames(model: CLIPVisionModelWithProjection, frames: np.ndarray,
                 device: str | torch.device | None = None, batch_size: int = 64) -> np.ndarray:
    """L2-normalised projected CLS embeddings, float32 N x D, of uint8 N x H x W x 3 RGB frames.

    Frames must already be the model's image size (the sample stage resizes and crops); only
    CLIP's mean/std normalisation happens here. Runs in chunks of `batch_size`, under
    inference mode, with fp16 autocast on CUDA (fp32 on CPU, where fp16 is slow).
    """
    frames = np.asarray(frames)
    size = int(model.config.image_size)
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected uint8 frames N x H x W x 3, got {frames.dtype} "
                         f"{frames.shape}")
    if frames.shape[1:3] != (size, size):
        raise ValueError(f"frames are {frames.shape[1]}x{frames.shape[2]} but the model takes "
                         f"{size}x{size}: sample them at that size")
    device = torch.device(device) if device is not None else next(model.parameters()).device
    mean = torch.tensor(CLIP_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(CLIP_STD, device=device).view(1, 3, 1, 1)
    autocast = (torch.autocast("cuda", dtype=torch.float16) if device.type == "cuda"
                else contextlib.nullcontext())
    out = [np.zeros((0, embedding_dim(model)), np.float32)]
    with torch.inference_mode(), autocast:
        for start in range(0, len(frames), batch_size):
            x = torch.from_numpy(frames[start:start + batch_size]).to(device)
            x = (x.permute(0, 3, 1, 2).float() / 255.0 - mean) / std
            emb = model(pixel_values=x).image_embeds.float()
            out.append(F.normalize(emb, dim=-1).cpu().numpy())
    return np.concatenate(out)
