"""STOA-VLP's trainable parts over frozen CLIP features and stored object trajectories.

From whongzhong/STOA-VLP (modules/modeling_pretrain.py), scaled to frozen features:

- object features: RoIAlign of the boxes on the CLIP patch tokens (done in the data
  transform; see :mod:`vlprep.train.stoa`);
- trajectory encoder: per trajectory, a [CLS] token plus its per-frame object tokens with
  frame position embeddings through a transformer, absent frames masked; the [CLS] output,
  normalised and projected, is the trajectory token;
- action queries: 4 learned queries attend, frame by frame, over that frame's patch tokens
  and object tokens (one softmax over both); each query's per-frame results, after the
  frame's mean CLIP embedding, go through a temporal transformer; the first output is the
  action token;
- the video: frame tokens, trajectory tokens and action tokens through a fusion transformer,
  mean-pooled and projected; the text: a transformer over CLIP BPE ids pooled at the end-of-
  text token (as CLIP does); VTC on the normalised pair;
- alignment: nouns to trajectories and verbs to action queries by Hungarian matching on
  softmax similarity, MSE to the (detached) text-token features (:func:`matched_mse`).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vlprep.train.encoders import LearnedTemperature, TextEncoder, Transformer, masked_mean


class StoaModel(nn.Module):
    def __init__(self, frame_dim: int, patch_dim: int, vocab: dict[str, Any], dim: int = 256,
                 layers: int = 2, text_layers: int = 2, heads: int = 4, actions: int = 4,
                 max_frames: int = 32, max_trajectories: int = 20, max_text_len: int = 77,
                 dropout: float = 0.1, temperature: float = 0.07):
        super().__init__()
        self.frame_proj = nn.Sequential(nn.LayerNorm(frame_dim), nn.Linear(frame_dim, dim))
        self.object_proj = nn.Sequential(nn.LayerNorm(patch_dim), nn.Linear(patch_dim, dim))
        self.patch_proj = nn.Sequential(nn.LayerNorm(patch_dim), nn.Linear(patch_dim, dim))
        self.traj_cls = nn.Parameter(torch.randn(1, 1, dim) * 0.02)
        self.trajectory = Transformer(dim, layers, heads, max_frames + 1, dropout)
        self.traj_out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.queries = nn.Parameter(torch.randn(actions, dim) * 0.02)
        self.action = Transformer(dim, 1, heads, max_frames + 1, dropout)
        self.action_out = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim))
        self.fusion = Transformer(dim, layers, heads, max_frames + max_trajectories + actions,
                                  dropout)
        self.video_proj = nn.Linear(dim, dim)
        self.text = TextEncoder(vocab["size"], dim, text_layers, heads, max_text_len,
                                vocab["pad"], dropout)
        self.text_proj = nn.Linear(dim, dim)
        self.temp = LearnedTemperature(temperature)
        self.actions = actions

    # objects and actions -------------------------------------------------------------------
    def trajectories(self, objects: torch.Tensor, present: torch.Tensor) -> torch.Tensor:
        """B x J x F x H object features (present: B x J x F) -> B x J x D tokens."""
        b, j, f, _ = objects.shape
        x = self.object_proj(objects).view(b * j, f, -1)
        mask = present.view(b * j, f)
        cls = self.traj_cls.expand(b * j, -1, -1)
        out = self.trajectory(torch.cat([cls, x], 1),
                              torch.cat([torch.ones_like(mask[:, :1]), mask], 1))
        return self.traj_out(out[:, 0]).view(b, j, -1)

    def action_tokens(self, patches: torch.Tensor, frame_objects: torch.Tensor,
                      object_mask: torch.Tensor, frames: torch.Tensor,
                      frame_mask: torch.Tensor) -> torch.Tensor:
        """Patches B x F x P x H, objects B x F x K x H (mask B x F x K), frame tokens
        B x F x D -> B x A x D action tokens."""
        keys = torch.cat([self.patch_proj(patches), self.object_proj(frame_objects)], 2)
        valid = torch.cat([torch.ones(patches.shape[:3], dtype=torch.bool,
                                      device=patches.device), object_mask], 2)
        scores = torch.einsum("ad,bfkd->bfak", self.queries, keys) / keys.shape[-1] ** 0.5
        scores = scores.masked_fill(~valid.unsqueeze(2), float("-inf"))
        per_frame = torch.einsum("bfak,bfkd->bafd", scores.softmax(-1), keys)  # B A F D
        b, a, f, d = per_frame.shape
        head = masked_mean(frames, frame_mask).view(b, 1, 1, d).expand(b, a, 1, d)
        seq = torch.cat([head, per_frame], 2).reshape(b * a, f + 1, d)
        mask = torch.cat([torch.ones_like(frame_mask[:, :1]), frame_mask], 1)
        mask = mask.unsqueeze(1).expand(b, a, f + 1).reshape(b * a, f + 1)
        return self.action_out(self.action(seq, mask)[:, 0]).view(b, a, d)

    # the two towers ----------------------------------------------------------------------------
    def video(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        frames = self.frame_proj(batch["frames"])
        fmask = batch["frame_mask"]
        traj = self.trajectories(batch["objects"], batch["present"])
        tmask = batch["present"].any(-1)
        acts = self.action_tokens(batch["patches"], batch["frame_objects"],
                                  batch["object_mask"], frames, fmask)
        amask = torch.ones(acts.shape[:2], dtype=torch.bool, device=acts.device)
        tokens = torch.cat([frames, traj, acts], 1)
        mask = torch.cat([fmask, tmask, amask], 1)
        fused = self.fusion(tokens, mask)
        vector = F.normalize(self.video_proj(masked_mean(fused, mask)), dim=-1)
        return {"vector": vector, "trajectories": traj, "trajectory_mask": tmask,
                "actions": acts}

    def text_tokens(self, ids: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor,
                                                                           torch.Tensor]:
        """(per-token features B x L x D, normalised vector pooled at the last token)."""
        tokens = self.text(ids, mask)
        last = mask.long().sum(1).clamp(min=1) - 1
        pooled = tokens[torch.arange(len(ids), device=ids.device), last]
        return tokens, F.normalize(self.text_proj(pooled), dim=-1)
