"""ALPRO's trainable parts over frozen CLIP features, and the export as a prompter.

Full model: frame embeddings -> a small video transformer with a [CLS] token -> 256-d
projection; BERT (a small `transformers` BertModel over the store's BERT ids) -> [CLS] ->
256-d projection; VTC with a learnable temperature. PEM reuses the video transformer: the
crop's patch tokens, mean-pooled per frame, go through it and an MLP head predicts the
prompter's entity distribution (ALPRO's ``mpm_head``: Linear, ReLU, Linear).

``vtc_only`` model (what ``--vtc-only`` trains): a bias-free linear map per frame, video =
normalised mean of the normalised frames. Since CLIP's stored embedding is the normalised
``visual_projection`` of the pooled CLS token, that map composes exactly with CLIP into the
``vision_proj`` of :class:`vlprep.models.vtc.VtcModel`, so the run exports a prompter the
prompter stage loads as it is (``prompter: alpro-vtc``).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from vlprep.train.encoders import LearnedTemperature, Transformer, masked_mean


def bert_config(vocab: dict[str, Any], dim: int, layers: int, heads: int, max_len: int,
                dropout: float) -> dict[str, Any]:
    return dict(vocab_size=vocab["size"], hidden_size=dim, num_hidden_layers=layers,
                num_attention_heads=heads, intermediate_size=4 * dim,
                max_position_embeddings=max_len, pad_token_id=vocab["pad"],
                hidden_dropout_prob=dropout, attention_probs_dropout_prob=dropout,
                type_vocab_size=2)


class AlproModel(nn.Module):
    def __init__(self, frame_dim: int, vocab: dict[str, Any], dim: int = 256,
                 embed_dim: int = 256, layers: int = 2, text_layers: int = 2, heads: int = 4,
                 max_frames: int = 64, max_text_len: int = 40, dropout: float = 0.1,
                 temperature: float = 0.07, vtc_only: bool = False, patch_dim: int = 0,
                 num_entities: int = 0):
        from transformers import BertConfig, BertModel

        super().__init__()
        self.vtc_only = vtc_only
        self.text_config = bert_config(vocab, dim, text_layers, heads, max_text_len, dropout)
        self.text = BertModel(BertConfig(**self.text_config), add_pooling_layer=False)
        self.text_proj = nn.Linear(dim, embed_dim)
        self.temp = LearnedTemperature(temperature)
        if vtc_only:
            self.frame_head = nn.Linear(frame_dim, embed_dim, bias=False)
            return
        self.frame_proj = nn.Sequential(nn.LayerNorm(frame_dim), nn.Linear(frame_dim, dim))
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        nn.init.normal_(self.cls, std=0.02)
        self.video = Transformer(dim, layers, heads, max_frames + 1, dropout)
        self.vision_proj = nn.Linear(dim, embed_dim)
        self.pem = patch_dim > 0 and num_entities > 0
        if self.pem:
            self.patch_proj = nn.Sequential(nn.LayerNorm(patch_dim), nn.Linear(patch_dim, dim))
            self.mpm_head = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(True),
                                          nn.Linear(2 * dim, num_entities))

    def _encode(self, tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """[CLS] + tokens through the video transformer; returns all outputs."""
        cls = self.cls.expand(len(tokens), -1, -1)
        full = torch.cat([cls, tokens], 1)
        full_mask = torch.cat([torch.ones_like(mask[:, :1]), mask], 1)
        return self.video(full, full_mask)

    def video_features(self, frames: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """B x T x E stored frame embeddings -> B x 256, normalised."""
        if self.vtc_only:
            per_frame = F.normalize(self.frame_head(frames), dim=-1)
            return F.normalize(masked_mean(per_frame, mask), dim=-1)
        out = self._encode(self.frame_proj(frames), mask)
        return F.normalize(self.vision_proj(out[:, 0]), dim=-1)

    def text_features(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.text(input_ids=ids, attention_mask=mask.long()).last_hidden_state
        return F.normalize(self.text_proj(hidden[:, 0]), dim=-1)

    def pem_logits(self, crops: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """N x T x H crop-pooled patch tokens -> N x entities."""
        out = self._encode(self.patch_proj(crops), mask)
        return self.mpm_head(masked_mean(out[:, 1:], mask))


def export_prompter(model: AlproModel, clip: Any, tokenizer: Any, directory: Any) -> Any:
    """Write a ``vlprep.alpro-vtc`` checkpoint: the frozen CLIP tower that made the store's
    embeddings, our frame map folded into its projection, our BERT and temperature."""
    from vlprep.models.vtc import VtcModel, save_vtc

    if not model.vtc_only:
        raise ValueError("only a --vtc-only model exports as a prompter")
    embed_dim = model.frame_head.out_features
    vision_config = {k: v for k, v in clip.config.to_dict().items()
                     if k not in ("architectures", "transformers_version", "model_type",
                                  "torch_dtype", "dtype")}
    vtc = VtcModel(vision_config, model.text_config, embed_dim, model.temp.value.item())
    vtc.vision.load_state_dict(clip.vision_model.state_dict())
    vtc.text.load_state_dict(model.text.state_dict())
    vtc.text_proj.load_state_dict(model.text_proj.state_dict())
    with torch.no_grad():
        folded = model.frame_head.weight.detach().cpu() @ clip.visual_projection.weight.detach()
        vtc.vision_proj.weight.copy_(folded)
        vtc.vision_proj.bias.zero_()
    return save_vtc(vtc.eval(), tokenizer, directory)
