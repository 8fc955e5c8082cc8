"""Small trainable encoders shared by the three methods.

The published methods fine-tune large backbones; here the backbones are frozen and their
features come from the store, so what is trained is light: transformers over the stored
feature sequences (frames, seconds, objects) and over the stored token ids.
"""

from __future__ import annotations

import torch
from torch import nn


def masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over dim 1 of B x L x D where mask (B x L, bool) is true; zeros for empty rows."""
    weights = mask.to(x.dtype).unsqueeze(-1)
    return (x * weights).sum(1) / weights.sum(1).clamp(min=1.0)


class Transformer(nn.Module):
    """Pre-norm transformer encoder with learned positions, over B x L x D with a key mask."""

    def __init__(self, dim: int, layers: int, heads: int, max_len: int, dropout: float = 0.1):
        super().__init__()
        self.position = nn.Parameter(torch.zeros(max_len, dim))
        nn.init.normal_(self.position, std=0.02)
        layer = nn.TransformerEncoderLayer(dim, heads, dim_feedforward=4 * dim, dropout=dropout,
                                           batch_first=True, norm_first=True, activation="gelu")
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.max_len = max_len

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        if x.shape[1] > self.max_len:
            raise ValueError(f"sequence of {x.shape[1]} is longer than max_len {self.max_len}")
        x = x + self.position[: x.shape[1]]
        # rows with no valid token would make attention NaN: let them attend to position 0
        safe = mask.clone()
        safe[~mask.any(1), 0] = True
        return self.norm(self.encoder(x, src_key_padding_mask=~safe))


class TextEncoder(nn.Module):
    """Token ids -> per-token features (B x L x D); the methods choose the pooling."""

    def __init__(self, vocab_rows: int, dim: int, layers: int, heads: int, max_len: int,
                 pad: int, dropout: float = 0.1):
        super().__init__()
        self.embed = nn.Embedding(vocab_rows, dim, padding_idx=pad)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.transformer = Transformer(dim, layers, heads, max_len, dropout)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.embed(ids), mask)


class FeatureEncoder(nn.Module):
    """A sequence of frozen features (B x L x F) -> B x L x D: an MLP into the model width
    (VideoCLIP's MLP over S3D features), then a transformer."""

    def __init__(self, in_dim: int, dim: int, layers: int, heads: int, max_len: int,
                 dropout: float = 0.1):
        super().__init__()
        self.project = nn.Sequential(nn.LayerNorm(in_dim), nn.Linear(in_dim, dim), nn.GELU(),
                                     nn.Linear(dim, dim))
        self.transformer = Transformer(dim, layers, heads, max_len, dropout)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self.transformer(self.project(x), mask)


class LearnedTemperature(nn.Module):
    """ALPRO's learnable softmax temperature, clamped to [low, high] before every use."""

    def __init__(self, init: float = 0.07, low: float = 0.001, high: float = 0.5):
        super().__init__()
        self.value = nn.Parameter(torch.tensor(float(init)))
        self.low, self.high = low, high

    def forward(self) -> torch.Tensor:
        with torch.no_grad():
            self.value.clamp_(self.low, self.high)
        return self.value

