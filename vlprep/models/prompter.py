"""ALPRO's prompter: entity prompt embeddings, crop embeddings, and soft entity labels.

A prompter embeds images and texts into one space (`embed_images`, `embed_texts`, both
L2-normalised) and has a `temperature`. Two kinds exist: a CLIP checkpoint (vision tower on
the crops, text tower on the prompts; here) and a video-text model trained by
``vlprep train alpro --vtc-only`` (:mod:`vlprep.models.vtc`). Each entity's prompt embedding
is the average of its 12 template embeddings, each normalised first (ALPRO does not
re-normalise the average); soft labels are softmax(crop @ prompts.T / temperature).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F

from vlprep.errors import CheckpointError
from vlprep.models.checkpoint import read_hf_model

log = logging.getLogger("vlprep")

# ALPRO's prompt ensembles (paper, appendix A.1; src/pretrain/run_pretrain_sparse.py).
VIDEO_TEMPLATES = (
    "A footage of a {}.", "A footage of the {}.", "A footage of one {}.",
    "A video of a {}.", "A video of the {}.", "A video of one {}.",
    "A portrait of a {}.", "A portrait of the {}.", "A portrait of one {}.",
    "A video footage of a {}.", "A video footage of the {}.", "A video footage of one {}.",
)
IMAGE_TEMPLATES = (
    "A photo of a {}.", "A photo of the {}.", "A photo of one {}.",
    "A picture of a {}.", "A picture of the {}.", "A picture of one {}.",
    "A good photo of the {}.", "A good photo of a {}.", "A good photo of one {}.",
    "A good picture of the {}.", "A good picture of a {}.", "A good picture of one {}.",
)
TEMPLATES = {"video": VIDEO_TEMPLATES, "image": IMAGE_TEMPLATES}

# CLIP ViT-B/16's text tower; `model_config: {text_config: ...}` overrides merge over it.
DEFAULT_TEXT_CONFIG: dict[str, Any] = {
    "hidden_size": 512, "intermediate_size": 2048, "num_hidden_layers": 12,
    "num_attention_heads": 8, "max_position_embeddings": 77, "hidden_act": "quick_gelu",
}


class Prompter(Protocol):
    image_size: int
    temperature: float  # the model's own (CLIP: 1 / exp(logit_scale))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def embed_images(self, images: np.ndarray) -> np.ndarray: ...


def normalised_pixels(images: np.ndarray, mean: Sequence[float], std: Sequence[float],
                      device: torch.device) -> torch.Tensor:
    """uint8 N x H x W x 3 RGB -> float N x 3 x H x W, scaled to [0, 1] then standardised."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    m = torch.tensor(mean, device=device).view(1, 3, 1, 1)
    s = torch.tensor(std, device=device).view(1, 3, 1, 1)
    return (x.permute(0, 3, 1, 2).float() / 255.0 - m) / s


def _features(out: Any) -> torch.Tensor:
    """get_*_features returns a tensor in transformers 4 and an output object in 5."""
    return out if isinstance(out, torch.Tensor) else out.pooler_output


class ClipPrompter:
    """A full CLIP model (both towers) and its tokenizer."""

    def __init__(self, model, tokenizer, device: torch.device, batch_size: int = 64,
                 text_batch: int = 256):
        self.model, self.tokenizer, self.device = model.to(device).eval(), tokenizer, device
        self.batch_size, self.text_batch = batch_size, text_batch
        self.image_size = int(model.config.vision_config.image_size)
        self.max_length = int(model.config.text_config.max_position_embeddings)
        self.temperature = float(1.0 / model.logit_scale.detach().exp().item())

    def _autocast(self):
        return (torch.autocast("cuda", dtype=torch.float16) if self.device.type == "cuda"
                else contextlib.nullcontext())

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = [np.zeros((0, self.model.config.projection_dim), np.float32)]
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(texts), self.text_batch):
                enc = self.tokenizer(list(texts[i:i + self.text_batch]), padding=True,
                                     truncation=True, max_length=self.max_length,
                                     return_tensors="pt").to(self.device)
                emb = _features(self.model.get_text_features(
                    input_ids=enc["input_ids"], attention_mask=enc["attention_mask"]))
                out.append(F.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)

    def embed_images(self, images: np.ndarray) -> np.ndarray:
        from vlprep.models.clip import CLIP_MEAN, CLIP_STD

        check_images(images, self.image_size)
        out = [np.zeros((0, self.model.config.projection_dim), np.float32)]
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(images), self.batch_size):
                x = normalised_pixels(images[i:i + self.batch_size], CLIP_MEAN, CLIP_STD,
                                      self.device)
                emb = _features(self.model.get_image_features(pixel_values=x))
                out.append(F.normalize(emb.float(), dim=-1).cpu().numpy())
        return np.concatenate(out)


def check_images(images: np.ndarray, size: int) -> None:
    if images.ndim != 4 or images.shape[3] != 3 or images.dtype != np.uint8:
        raise ValueError(f"expected uint8 images N x H x W x 3, got {images.dtype} "
                         f"{images.shape}")
    if images.shape[1:3] != (size, size):
        raise ValueError(f"images are {images.shape[1]}x{images.shape[2]} but the prompter "
                         f"takes {size}x{size}: sample frames at that size")


def load_clip_model(checkpoint: str | Path):
    """A full CLIPModel (vision + text towers) from a local Hugging Face directory."""
    from transformers import CLIPConfig, CLIPModel

    model, missing = read_hf_model(checkpoint, CLIPModel, CLIPConfig,
                                   "the prompter's full CLIP model", model_type="clip")
    if missing:
        raise CheckpointError(f"{checkpoint}: weights missing for {len(missing)} parameters "
                              f"(e.g. {missing[0]}); the prompter needs a full CLIP model "
                              "(vision and text towers)")
    return model


def random_clip_model(tokenizer, seed: int = 0, config: dict[str, Any] | None = None):
    """A full CLIPModel with seeded random weights (same in every process), its text tower
    sized to `tokenizer`; for demos and tests only, and said so loudly."""
    from transformers import CLIPConfig, CLIPModel

    from vlprep.models.clip import DEFAULT_VISION_CONFIG

    config = dict(config or {})
    vision = {**DEFAULT_VISION_CONFIG, **config.pop("vision_config", {})}
    text = {**DEFAULT_TEXT_CONFIG, **config.pop("text_config", {}),
            "vocab_size": len(tokenizer), "bos_token_id": tokenizer.bos_token_id,
            "eos_token_id": tokenizer.eos_token_id, "pad_token_id": tokenizer.pad_token_id}
    config.setdefault("projection_dim", vision.get("projection_dim", 512))
    cfg = CLIPConfig(vision_config=vision, text_config=text, **config)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(cfg)
    log.warning("prompter CLIP is RANDOMLY INITIALISED (seed %d): its soft labels are NOT "
                "meaningful; set a checkpoint for real ones", seed)
    return model.float().eval()


def prompt_embeddings(prompter: Prompter, entities: Sequence[str],
                      templates: Sequence[str]) -> np.ndarray:
    """E x D: per entity, the mean of its template embeddings (each normalised)."""
    total: np.ndarray | None = None
    for template in templates:
        emb = prompter.embed_texts([template.format(e) for e in entities]).astype(np.float64)
        total = emb if total is None else total + emb
    if total is None:
        raise ValueError("no prompt templates")
    return (total / len(templates)).astype(np.float32)


def soft_labels(crops: np.ndarray, prompts: np.ndarray, temperature: float) -> np.ndarray:
    """K x E probabilities: softmax(crops @ prompts.T / temperature) over the entities."""
    logits = crops.astype(np.float64) @ prompts.astype(np.float64).T / temperature
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def top_k(probs: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most probable entity ids per row, best first (ties: lower id first)."""
    k = min(k, probs.shape[1])
    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return order, np.take_along_axis(probs, order, axis=1)


def float32_down(values: np.ndarray) -> np.ndarray:
    """float32 values never above the given ones, so stored top-k probabilities still sum
    to at most 1 (rounding to nearest could push a near-certain label over)."""
    out = values.astype(np.float32)
    high = out.astype(np.float64) > values
    out[high] = np.nextafter(out[high], np.float32(0))
    return out


# ALPRO's published prompter (TimeSformer + BERT), in its own modules.
from vlprep.models.alpro import AlproPrompter  # noqa: E402, F401
