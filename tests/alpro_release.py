"""ALPRO's released prompter key layout, written independently of vlprep's modules.

Every key ``Prompter(...).state_dict()`` has (salesforce/ALPRO src/modeling/alpro_models.py
``AlproBaseModel`` + ``Prompter``, timesformer/vit.py ``VisionTransformer``, xbert.py
``BertForMaskedLM``), with its shape, for the released sizes or a tiny variant; and a seeded
random state dict in that layout (weights ~ N(0, std), LayerNorms near 1), built at test time.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from vlprep.models.alpro import AlproPrompterConfig
from vlprep.models.timesformer import TimeSformerConfig


@dataclass(frozen=True)
class Sizes:
    image: int = 224
    patch: int = 16
    frames: int = 4
    width: int = 768  # ViT and BERT hidden size
    depth: int = 12  # ViT blocks
    text_layers: int = 12  # BERT layers in the file (6 text + 6 fusion)
    intermediate: int = 3072
    vocab: int = 30522
    positions: int = 512
    embed: int = 256
    entities: int = 1000
    classes: int = 400  # TimeSformer head (Kinetics), unused by the prompter


FULL = Sizes()
TINY = Sizes(image=32, patch=16, frames=3, width=16, depth=2, text_layers=4,
             intermediate=24, vocab=200, positions=40, embed=8, entities=10, classes=5)


def released_shapes(s: Sizes = FULL) -> dict[str, tuple[int, ...]]:
    d, n = s.width, (s.image // s.patch) ** 2
    shapes: dict[str, tuple[int, ...]] = {"temp": ()}
    v = "visual_encoder.model."
    shapes.update({v + "cls_token": (1, 1, d), v + "pos_embed": (1, n + 1, d),
                   v + "time_embed": (1, s.frames, d),
                   v + "patch_embed.proj.weight": (d, 3, s.patch, s.patch),
                   v + "patch_embed.proj.bias": (d,)})
    for i in range(s.depth):
        b = f"{v}blocks.{i}."
        for norm in ("norm1", "temporal_norm1", "norm2"):
            shapes[b + norm + ".weight"] = shapes[b + norm + ".bias"] = (d,)
        for attn in ("attn", "temporal_attn"):
            shapes[f"{b}{attn}.qkv.weight"], shapes[f"{b}{attn}.qkv.bias"] = (3 * d, d), (3 * d,)
            shapes[f"{b}{attn}.proj.weight"], shapes[f"{b}{attn}.proj.bias"] = (d, d), (d,)
        shapes[b + "temporal_fc.weight"], shapes[b + "temporal_fc.bias"] = (d, d), (d,)
        shapes[b + "mlp.fc1.weight"], shapes[b + "mlp.fc1.bias"] = (4 * d, d), (4 * d,)
        shapes[b + "mlp.fc2.weight"], shapes[b + "mlp.fc2.bias"] = (d, 4 * d), (d,)
    shapes[v + "norm.weight"] = shapes[v + "norm.bias"] = (d,)
    shapes[v + "head.weight"], shapes[v + "head.bias"] = (s.classes, d), (s.classes,)
    t = "text_encoder.bert."
    shapes.update({t + "embeddings.position_ids": (1, s.positions),
                   t + "embeddings.word_embeddings.weight": (s.vocab, d),
                   t + "embeddings.position_embeddings.weight": (s.positions, d),
                   t + "embeddings.token_type_embeddings.weight": (2, d),
                   t + "embeddings.LayerNorm.weight": (d,), t + "embeddings.LayerNorm.bias": (d,)})
    for i in range(s.text_layers):
        b = f"{t}encoder.layer.{i}."
        for name in ("query", "key", "value"):
            shapes[f"{b}attention.self.{name}.weight"] = (d, d)
            shapes[f"{b}attention.self.{name}.bias"] = (d,)
        shapes[b + "attention.output.dense.weight"] = (d, d)
        shapes[b + "attention.output.dense.bias"] = (d,)
        shapes[b + "attention.output.LayerNorm.weight"] = (d,)
        shapes[b + "attention.output.LayerNorm.bias"] = (d,)
        shapes[b + "intermediate.dense.weight"] = (s.intermediate, d)
        shapes[b + "intermediate.dense.bias"] = (s.intermediate,)
        shapes[b + "output.dense.weight"] = (d, s.intermediate)
        shapes[b + "output.dense.bias"] = (d,)
        shapes[b + "output.LayerNorm.weight"] = shapes[b + "output.LayerNorm.bias"] = (d,)
    c = "text_encoder.cls.predictions."
    shapes.update({c + "bias": (s.vocab,), c + "transform.dense.weight": (d, d),
                   c + "transform.dense.bias": (d,), c + "transform.LayerNorm.weight": (d,),
                   c + "transform.LayerNorm.bias": (d,), c + "decoder.weight": (s.vocab, d),
                   c + "decoder.bias": (s.vocab,)})
    shapes.update({"vision_proj.weight": (s.embed, d), "vision_proj.bias": (s.embed,),
                   "text_proj.weight": (s.embed, d), "text_proj.bias": (s.embed,),
                   "itm_head.weight": (2, d), "itm_head.bias": (2,),
                   "video_prompt_feat": (s.entities, s.embed),
                   "image_prompt_feat": (s.entities, s.embed)})
    return shapes


def random_released_state(seed: int = 0, s: Sizes = FULL,
                          temp: float = 0.05, std: float = 0.02) -> dict[str, torch.Tensor]:
    """A seeded random Prompter state dict in the released layout (the MLM decoder shares the
    word embeddings' storage, as BERT's tied weights do in a saved state dict)."""
    gen = torch.Generator().manual_seed(seed)
    state: dict[str, torch.Tensor] = {}
    for key, shape in released_shapes(s).items():
        if key == "temp":
            state[key] = torch.tensor(temp)
        elif key.endswith("position_ids"):
            state[key] = torch.arange(shape[1]).unsqueeze(0)
        elif key.endswith("cls.predictions.decoder.weight"):
            state[key] = state["text_encoder.bert.embeddings.word_embeddings.weight"]
        elif key.endswith(".weight") and "norm" in key.split(".")[-2].lower():
            state[key] = 1.0 + 0.1 * torch.randn(shape, generator=gen)
        else:
            state[key] = std * torch.randn(shape, generator=gen)
    return state


# the prompter config that reads TINY (2 heads; text layers 0-1 of 4, i.e. fusion_layer 2)
TINY_CONFIG = AlproPrompterConfig(
    vision=TimeSformerConfig(image_size=TINY.image, patch_size=TINY.patch,
                             num_frames=TINY.frames, embed_dim=TINY.width, depth=TINY.depth,
                             num_heads=2),
    vocab_size=TINY.vocab, hidden_size=TINY.width, text_layers=2, num_attention_heads=2,
    intermediate_size=TINY.intermediate, max_position_embeddings=TINY.positions,
    embed_dim=TINY.embed)
