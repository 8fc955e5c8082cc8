"""TimeSformer with divided space-time attention, as ALPRO's video encoder runs it.

Written from salesforce/ALPRO ``src/modeling/timesformer/vit.py`` (inference only; dropout and
drop-path are identities there at eval). Module names follow that file, so a state dict under
``visual_encoder.model.`` loads with the prefix dropped. The token order matters:

- patches are embedded per frame, the CLS token prepended, ``pos_embed`` added (per frame);
- the patch tokens are regrouped patch-major, time-minor (``b (n t) m``) and ``time_embed`` is
  added; the CLS token of the first frame is kept once, in front: ``1 + N*T`` tokens;
- each block attends over time first (each patch position across the T frames, CLS left out;
  ``temporal_norm1`` -> ``temporal_attn`` -> ``temporal_fc``, added to the patch tokens), then
  over space (per frame: the CLS token copied in front of that frame's patches, ``norm1`` ->
  ``attn``); the CLS token's spatial outputs are averaged over the frames, and both residuals
  are added to the tokens as they were before the spatial step (the CLS token skips the
  temporal step); then ``norm2`` -> ``mlp`` with a residual;
- a final LayerNorm (eps 1e-6); token 0 is the video's CLS.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class TimeSformerConfig:
    """ViT-B/16 at 224 with ALPRO's 4 frames by default (``config_release/*.json``)."""

    image_size: int = 224
    patch_size: int = 16
    num_frames: int = 4
    embed_dim: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    eps: float = 1e-6

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


class Attention(nn.Module):
    """Multi-head self-attention with one fused qkv projection (bias on, as ALPRO)."""

    def __init__(self, dim: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, n, c = x.shape
        q, k, v = self.qkv(x).reshape(b, n, 3, self.num_heads, c // self.num_heads) \
            .permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(q, k, v, scale=self.scale)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.fc1, self.act, self.fc2 = nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """One divided space-time block: temporal attention, then spatial, then the MLP."""

    def __init__(self, cfg: TimeSformerConfig):
        super().__init__()
        dim = cfg.embed_dim
        self.norm1 = nn.LayerNorm(dim, eps=cfg.eps)
        self.attn = Attention(dim, cfg.num_heads)
        self.temporal_norm1 = nn.LayerNorm(dim, eps=cfg.eps)
        self.temporal_attn = Attention(dim, cfg.num_heads)
        self.temporal_fc = nn.Linear(dim, dim)
        self.norm2 = nn.LayerNorm(dim, eps=cfg.eps)
        self.mlp = Mlp(dim, int(dim * cfg.mlp_ratio))

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        """x: B x (1 + N*T) x D, patch tokens in (n t) order."""
        b, _, d = x.shape
        t = frames
        n = (x.shape[1] - 1) // t
        cls, patches = x[:, :1], x[:, 1:]
        # temporal: every patch position attends over its T frames
        xt = patches.reshape(b * n, t, d)
        res_t = self.temporal_attn(self.temporal_norm1(xt)).reshape(b, n * t, d)
        xt = patches + self.temporal_fc(res_t)
        # spatial: every frame attends over its N patches and a copy of the CLS token
        xs = xt.reshape(b, n, t, d).transpose(1, 2).reshape(b * t, n, d)
        xs = torch.cat((cls.repeat_interleave(t, dim=0), xs), dim=1)
        res_s = self.attn(self.norm1(xs))
        res_cls = res_s[:, 0].reshape(b, t, d).mean(dim=1, keepdim=True)
        res_p = res_s[:, 1:].reshape(b, t, n, d).transpose(1, 2).reshape(b, n * t, d)
        x = torch.cat((cls, xt), dim=1) + torch.cat((res_cls, res_p), dim=1)
        return x + self.mlp(self.norm2(x))


class PatchEmbed(nn.Module):
    def __init__(self, cfg: TimeSformerConfig):
        super().__init__()
        self.proj = nn.Conv2d(3, cfg.embed_dim, cfg.patch_size, stride=cfg.patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B*T) x 3 x H x W -> (B*T) x N x D."""
        return self.proj(x).flatten(2).transpose(1, 2)


class TimeSformer(nn.Module):
    """ALPRO's ``VisionTransformer`` (divided space-time) without its classifier head."""

    def __init__(self, cfg: TimeSformerConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or TimeSformerConfig()
        self.patch_embed = PatchEmbed(cfg)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, cfg.num_patches + 1, cfg.embed_dim))
        self.time_embed = nn.Parameter(torch.zeros(1, cfg.num_frames, cfg.embed_dim))
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.depth))
        self.norm = nn.LayerNorm(cfg.embed_dim, eps=cfg.eps)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        """B x T x 3 x H x W standardised pixels -> B x (1 + N*T) x D, all tokens, normed."""
        b, t, c, h, w = video.shape
        if (h, w) != (self.cfg.image_size,) * 2:
            raise ValueError(f"frames are {w}x{h}; the TimeSformer takes "
                             f"{self.cfg.image_size}x{self.cfg.image_size}")
        x = self.patch_embed(video.reshape(b * t, c, h, w))
        n, d = x.shape[1], x.shape[2]
        x = torch.cat((self.cls_token.expand(b * t, -1, -1), x), dim=1) + self.pos_embed
        cls = x[::t, :1]  # ALPRO keeps x[:B, 0]: every frame's CLS row is the same vector
        patches = x[:, 1:].reshape(b, t, n, d).transpose(1, 2)  # B x N x T x D
        time_embed = self.time_embed
        if t != time_embed.shape[1]:  # ALPRO: nearest interpolation over time
            time_embed = F.interpolate(time_embed.transpose(1, 2), size=t,
                                       mode="nearest").transpose(1, 2)
        patches = (patches + time_embed.unsqueeze(1)).reshape(b, n * t, d)
        x = torch.cat((cls, patches), dim=1)
        for block in self.blocks:
            x = block(x, t)
        return self.norm(x)
