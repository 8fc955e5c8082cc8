"""ALPRO's published prompter: TimeSformer crops and BERT prompts in one 256-d space.

Follows salesforce/ALPRO ``Prompter`` (``src/modeling/alpro_models.py``) at inference:

- a crop (the box kept on every frame, everything outside zeroed in raw 0-255 pixels,
  ``random_erase``; then ``/255`` and CLIP's mean/std, ``ImageNorm``) is one video of T frames:
  ``normalize(vision_proj(TimeSformer(video)[:, 0]))``;
- a prompt is ``normalize(text_proj(BERT_text(ids)[:, 0]))``, BERT in ``mode='text'``: only
  layers ``0 .. fusion_layer-1`` (0-5) run; prompts are tokenized to ``max_length=15``, padded;
- an entity's prompt embedding is the mean of its templates' normalised embeddings, NOT
  re-normalised (``build_text_prompts``);
- soft labels are ``softmax(V @ P.T / temp)`` with ``temp`` as stored (ALPRO clamps it only in
  training forwards); ALPRO's ignore mask is ``argmax(sim) < 0.2`` (:func:`alpro_ignore`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlprep.models.accel import Precision, autocast, to_device
from vlprep.models.alpro_checkpoint import file_sha256, load_into, read_checkpoint
from vlprep.models.timesformer import TimeSformer, TimeSformerConfig

log = logging.getLogger("vlprep")

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # config_release/*.json img_pixel_mean
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
PROMPT_MAX_LENGTH = 15  # run_pretrain_sparse.py setup_text_prompts


@dataclass(frozen=True)
class AlproPrompterConfig:
    """The released prompter's sizes (base_model.json, timesformer_divst_8x32_224_k600.json
    with num_frm 4 and crop_img_size 224)."""

    vision: TimeSformerConfig = field(default_factory=TimeSformerConfig)
    vocab_size: int = 30522
    hidden_size: int = 768
    text_layers: int = 6  # fusion_layer: mode='text' runs layers 0..5 of 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    embed_dim: int = 256


class AlproPrompterModel(nn.Module):
    """The parts of ALPRO's Prompter the soft labels use (keys: see alpro_checkpoint)."""

    def __init__(self, cfg: AlproPrompterConfig | None = None):
        from transformers import BertConfig, BertModel

        from vlprep.models.checkpoint import quiet_transformers

        super().__init__()
        self.cfg = cfg = cfg or AlproPrompterConfig()
        self.vision = TimeSformer(cfg.vision)
        bert = BertConfig(vocab_size=cfg.vocab_size, hidden_size=cfg.hidden_size,
                          num_hidden_layers=cfg.text_layers,
                          num_attention_heads=cfg.num_attention_heads,
                          intermediate_size=cfg.intermediate_size, hidden_act="gelu",
                          max_position_embeddings=cfg.max_position_embeddings,
                          type_vocab_size=cfg.type_vocab_size, layer_norm_eps=1e-12,
                          pad_token_id=0)
        with quiet_transformers():
            self.text = BertModel(bert, add_pooling_layer=False)
        self.vision_proj = nn.Linear(cfg.vision.embed_dim, cfg.embed_dim)
        self.text_proj = nn.Linear(cfg.hidden_size, cfg.embed_dim)
        self.temp = nn.Parameter(torch.tensor(0.07))

    def video_features(self, pixels: torch.Tensor) -> torch.Tensor:
        """B x T x 3 x H x W standardised -> B x 256, normalised projected CLS."""
        return F.normalize(self.vision_proj(self.vision(pixels)[:, 0]), dim=-1)

    def text_features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.text(input_ids=ids, attention_mask=mask).last_hidden_state
        return F.normalize(self.text_proj(hidden[:, 0]), dim=-1)


def standardise(frames: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 ... x H x W x 3 -> float ... x 3 x H x W: /255 then CLIP's mean and std."""
    x = to_device(frames, device).float().div_(255.0)
    x = x.movedim(-1, -3)
    mean = torch.tensor(CLIP_MEAN, device=device).view(3, 1, 1)
    std = torch.tensor(CLIP_STD, device=device).view(3, 1, 1)
    return (x - mean) / std


def mask_outside(frames: np.ndarray, box: Sequence[int]) -> np.ndarray:
    """T x H x W x 3 with everything outside (left, top, width, height) set to 0."""
    left, top, width, height = (int(v) for v in box)
    out = np.zeros_like(frames)
    out[:, top:top + height, left:left + width] = frames[:, top:top + height, left:left + width]
    return out


def alpro_ignore(probs: np.ndarray) -> np.ndarray:
    """ALPRO's literal ignore rule: ``torch.max(sim, dim=1)[1] < 0.2``, the argmax INDEX
    compared with 0.2, i.e. True exactly where the top entity is entity 0."""
    return np.argmax(probs, axis=1) < 0.2


class AlproPrompter:
    """The public API (CONTRACT.md): prompt and crop embeddings and soft labels, numpy float32.

    Also a prompter for the stage (``embed_texts``, ``embed_videos``, ``temperature``)."""

    def __init__(self, model: AlproPrompterModel, tokenizer, device: torch.device | str = "cpu",
                 precision: Precision = "fp32", video_batch: int = 16, text_batch: int = 512,
                 checkpoint: str | Path | None = None):
        self.device = torch.device(device)
        self.model = model.to(self.device).eval()
        self.tokenizer = tokenizer
        self.precision, self.video_batch, self.text_batch = precision, video_batch, text_batch
        self.image_size = model.cfg.vision.image_size
        self.num_frames = model.cfg.vision.num_frames  # an image is this many copies (ALPRO)
        self.temperature = float(model.temp.detach().item())  # as stored, no clamp
        self.checkpoint = checkpoint
        self._sha256: str | None = None

    @property
    def sha256(self) -> str | None:
        """The checkpoint file's sha256 (computed once, when first asked for)."""
        if self._sha256 is None and self.checkpoint is not None:
            self._sha256 = file_sha256(self.checkpoint)
        return self._sha256

    @classmethod
    def from_checkpoint(cls, path: str | Path, tokenizer: str | Path, device: str = "cpu",
                        config: AlproPrompterConfig | None = None, **kwargs) -> AlproPrompter:
        """Load ``prompter_pretrained.pt`` (any accepted layout) and a BertTokenizer dir."""
        from vlprep.models.clip import resolve_device
        from vlprep.models.tokenizers import load_tokenizer

        tensors = read_checkpoint(path)
        with torch.device("meta"):  # no random init of 188M weights the file replaces
            model = AlproPrompterModel(config)
        load_into(model, tensors, str(path))
        del tensors
        tok = load_tokenizer(str(tokenizer), "bert")
        return cls(model, tok, resolve_device(device), checkpoint=path, **kwargs)

    @classmethod
    def random(cls, tokenizer, seed: int = 0, device: str = "cpu",
               config: AlproPrompterConfig | None = None, **kwargs) -> AlproPrompter:
        """Seeded random weights at the released size (demos, benchmarks), said loudly."""
        from vlprep.models.clip import resolve_device

        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = AlproPrompterModel(config)
        log.warning("ALPRO prompter is RANDOMLY INITIALISED (seed %d): its soft labels are NOT "
                    "meaningful; set checkpoint to prompter_pretrained.pt for real ones", seed)
        prompter = cls(model, tokenizer, resolve_device(device), **kwargs)
        prompter._sha256 = f"random-seed-{seed}"
        return prompter

    def _autocast(self):
        """fp32 by default, as ALPRO runs it (amp off in its configs); fp16/bf16 on request."""
        return autocast(self.device, self.precision)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """N x 256, each normalised; ALPRO's tokenization (max_length 15, padded)."""
        out = [np.zeros((0, self.model.cfg.embed_dim), np.float32)]
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(texts), self.text_batch):
                enc = self.tokenizer(list(texts[i:i + self.text_batch]),
                                     max_length=PROMPT_MAX_LENGTH, padding="max_length",
                                     truncation=True, return_tensors="pt").to(self.device)
                emb = self.model.text_features(enc["input_ids"], enc["attention_mask"])
                out.append(emb.float().cpu().numpy())
        return np.concatenate(out)

    def embed_prompts(self, entities: Sequence[str], templates: Sequence[str]) -> np.ndarray:
        """E x 256: per entity the mean over templates of the normalised embeddings."""
        from vlprep.models.prompter import prompt_embeddings

        return prompt_embeddings(self, entities, templates)

    def embed_videos(self, videos: np.ndarray) -> np.ndarray:
        """uint8 B x T x H x W x 3 (already masked) -> B x 256 float32, normalised."""
        if videos.ndim != 5 or videos.shape[-1] != 3 or videos.dtype != np.uint8:
            raise ValueError(f"expected uint8 videos B x T x H x W x 3, got {videos.dtype} "
                             f"{videos.shape}")
        out = [np.zeros((0, self.model.cfg.embed_dim), np.float32)]
        with torch.inference_mode(), self._autocast():
            for i in range(0, len(videos), self.video_batch):
                x = standardise(videos[i:i + self.video_batch], self.device)
                out.append(self.model.video_features(x).float().cpu().numpy())
        return np.concatenate(out)

    def embed_crops(self, frames: np.ndarray, boxes: Sequence[Sequence[int]]) -> np.ndarray:
        """frames uint8 T x H x W x 3 RGB at the prompter's size; boxes (left, top, width,
        height) pixels -> K x 256: each box kept on every frame, the rest zeroed."""
        if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
            raise ValueError(f"expected uint8 frames T x H x W x 3, got {frames.dtype} "
                             f"{frames.shape}")
        if not len(boxes):
            return np.zeros((0, self.model.cfg.embed_dim), np.float32)
        return self.embed_videos(np.stack([mask_outside(frames, b) for b in boxes]))

    def soft_labels(self, crops: np.ndarray, prompts: np.ndarray) -> np.ndarray:
        """K x E float32: softmax(V @ P.T / temp) over the entities, temp as stored."""
        from vlprep.models.prompter import soft_labels

        return soft_labels(crops, prompts, self.temperature).astype(np.float32)
