"""The checkpoint format of ``vlprep train alpro --vtc-only``, and its use as a prompter.

ALPRO's prompter is a video-text contrastive (VTC) model: a vision encoder with a projection
to 256 dimensions, BERT with its own projection, and a learned temperature (initial 0.07,
clamped to [0.001, 0.5]). vlprep's version encodes frames with a CLIP-style ViT and pools a
video as the normalised mean of its normalised frame embeddings. A checkpoint directory:

- ``config.json``: ``{"format": "vlprep.alpro-vtc", "format_version": 1, "embed_dim": 256,
  "temperature": 0.07, "image_mean": [...], "image_std": [...], "vision_config": {...}
  (CLIPVisionConfig), "text_config": {...} (BertConfig)}``;
- ``model.safetensors``: the state dict of :class:`VtcModel` (``vision.*``, ``vision_proj.*``,
  ``text.*``, ``text_proj.*``, ``temp``), every key required;
- the BERT tokenizer's files (``save_pretrained``), in the same directory.

:func:`save_vtc` writes one; the trainer is to train a :class:`VtcModel` and call it.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlprep.models.checkpoint import quiet_transformers
from vlprep.models.clip import CLIP_MEAN, CLIP_STD, CheckpointError
from vlprep.models.prompter import check_images, normalised_pixels

FORMAT, FORMAT_VERSION = "vlprep.alpro-vtc", 1
TEMP_RANGE = (0.001, 0.5)


class VtcModel(nn.Module):
    def __init__(self, vision_config: dict[str, Any], text_config: dict[str, Any],
                 embed_dim: int = 256, temperature: float = 0.07):
        from transformers import BertConfig, BertModel, CLIPVisionConfig, CLIPVisionModel

        super().__init__()
        with quiet_transformers():
            self.vision = CLIPVisionModel(CLIPVisionConfig(**vision_config))
            self.text = BertModel(BertConfig(**text_config), add_pooling_layer=False)
        self.vision_proj = nn.Linear(self.vision.config.hidden_size, embed_dim)
        self.text_proj = nn.Linear(self.text.config.hidden_size, embed_dim)
        self.temp = nn.Parameter(torch.tensor(float(temperature)))

    @property
    def temperature(self) -> float:
        return float(self.temp.detach().clamp(*TEMP_RANGE).item())

    def image_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """N x 3 x H x W standardised pixels -> N x D, normalised (projected CLS)."""
        cls = self.vision(pixel_values=pixel_values).pooler_output
        return F.normalize(self.vision_proj(cls), dim=-1)

    def video_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """B x T x 3 x H x W -> B x D: the normalised mean of the frame embeddings."""
        b, t = pixel_values.shape[:2]
        frames = self.image_features(pixel_values.flatten(0, 1)).view(b, t, -1)
        return F.normalize(frames.mean(dim=1), dim=-1)

    def text_features(self, input_ids: torch.Tensor,
                      attention_mask: torch.Tensor) -> torch.Tensor:
        """Token ids -> N x D, normalised (projected [CLS], as ALPRO)."""
        hidden = self.text(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return F.normalize(self.text_proj(hidden[:, 0]), dim=-1)


def save_vtc(model: VtcModel, tokenizer, directory: str | Path,
             image_mean: Sequence[float] = CLIP_MEAN,
             image_std: Sequence[float] = CLIP_STD) -> Path:
    """Write a checkpoint directory in the format above."""
    from safetensors.torch import save_file

    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    config = {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "embed_dim": model.vision_proj.out_features, "temperature": model.temperature,
        "image_mean": list(image_mean), "image_std": list(image_std),
        "vision_config": _config_dict(model.vision.config),
        "text_config": _config_dict(model.text.config),
    }
    (root / "config.json").write_text(json.dumps(config, indent=1))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(root / "model.safetensors"))
    tokenizer.save_pretrained(root)
    return root


def _config_dict(config) -> dict[str, Any]:
    data = config.to_dict()
    for key in ("architectures", "transformers_version", "model_type", "torch_dtype", "dtype"):
        data.pop(key, None)
    return data


def load_vtc(directory: str | Path) -> tuple[VtcModel, Any, dict[str, Any]]:
    """(model in eval mode, its BERT tokenizer, config) from a checkpoint directory."""
    from safetensors.torch import load_file

    from vlprep.models.tokenizers import load_tokenizer

    root = Path(directory)
    try:
        config = json.loads((root / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{root}: no readable config.json ({e})") from None
    if config.get("format") != FORMAT or config.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(f"{root}: not a {FORMAT} v{FORMAT_VERSION} checkpoint "
                              f"(format {config.get('format')!r})")
    if not (root / "model.safetensors").is_file():
        raise CheckpointError(f"{root}: no model.safetensors")
    model = VtcModel(config["vision_config"], config["text_config"], config["embed_dim"],
                     config.get("temperature", 0.07))
    state = load_file(str(root / "model.safetensors"))
    own = model.state_dict()
    missing = [k for k in own if k not in state and not k.endswith("position_ids")]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        key = (missing or unexpected)[0]
        raise CheckpointError(f"{root}: {len(missing)} weights missing, {len(unexpected)} "
                              f"unexpected (e.g. {key})")
    model.load_state_dict(state, strict=False)
    return model.float().eval(), load_tokenizer(str(root), "bert"), config


class VtcPrompter:
    """A VTC checkpoint as a prompter: ViT on the crops, BERT on the prompts."""

    def __init__(self, model: VtcModel, tokenizer, config: dict[str, Any],
                 device: torch.device, batch_size: int = 64, max_length: int = 32,
                 text_batch: int = 256):
        self.model, self.tokenizer, self.device = model.to(device).eval(), tokenizer, device
        self.batch_size, self.max_length, self.text_batch = batch_size, max_length, text_batch
        self.image_size = int(model.vision.config.image_size)
        self.temperature = model.temperature
        self.mean = config.get("image_mean", CLIP_MEAN)
        self.std = config.get("image_std", CLIP_STD)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = [np.zeros((0, self.model.text_proj.out_features), np.float32)]
        with torch.inference_mode():
            for i in range(0, len(texts), self.text_batch):
                enc = self.tokenizer(list(texts[i:i + self.text_batch]), padding=True,
                                     truncation=True, max_length=self.max_length,
                                     return_tensors="pt").to(self.device)
                emb = self.model.text_features(enc["input_ids"], enc["attention_mask"])
                out.append(emb.float().cpu().numpy())
        return np.concatenate(out)

    def embed_images(self, images: np.ndarray) -> np.ndarray:
        check_images(images, self.image_size)
        out = [np.zeros((0, self.model.vision_proj.out_features), np.float32)]
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                x = normalised_pixels(images[i:i + self.batch_size], self.mean, self.std,
                                      self.device)
                out.append(self.model.image_features(x).float().cpu().numpy())
        return np.concatenate(out)
