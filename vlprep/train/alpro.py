"""ALPRO from the store: VTC over `clip_frames` and `texts`, plus PEM over `soft_labels`.

Reads `clip_frames` (frame embeddings; patch tokens for PEM), `texts` (``bert_ids``) and,
for PEM, `soft_labels` and the size of `entities`. Training uses ALPRO's pretraining frame
sampling over the stored frames (``headtail``: half of the frames drawn from each half of
the video), evaluation all stored frames. PEM targets are the prompter's top-k entity
probabilities (renormalised), one random crop per video and step; crops flagged
``low_confidence`` are skipped, as ALPRO drops pseudo-labels under 0.2.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vlprep.train.alpro_model import AlproModel
from vlprep.train.arrays import dim_of, pad_sequences, sorted_by, vector_lists, vectors
from vlprep.train.data import ReadSpec, VideoRows
from vlprep.train.losses import soft_cross_entropy, vtc
from vlprep.train.method import Method
from vlprep.train.recipe import frame_side, load_recipe, stage_of
from vlprep.train.text import Vocab, pad_batch, vocab_from_store, with_specials

log = logging.getLogger("vlprep")
SOFT_COLUMNS = ["crop", "left", "top", "width", "height", "entity_ids", "probs",
                "low_confidence"]


@dataclass
class AlproOptions:
    dim: int = 256
    embed_dim: int = 256  # ALPRO's VTC space
    layers: int = 2
    text_layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    train_frames: int = 4  # ALPRO pretraining: 4 frames, headtail; 0 = every stored frame
    max_text_len: int = 40
    temperature: float = 0.07
    vtc_only: bool = False
    pem: bool = True  # when the store has soft_labels and patch tokens
    pem_weight: float = 1.0


def headtail(count: int, take: int, rng: random.Random) -> list[int]:
    """ALPRO's "headtail": take/2 sorted random picks from each half of `count` frames."""
    if take <= 0 or take >= count:
        return list(range(count))
    half = count // 2
    head = sorted(rng.sample(range(half), min(half, take // 2)))
    tail = sorted(rng.sample(range(half, count), min(count - half, take - len(head))))
    return head + tail


def crop_cells(left: int, top: int, width: int, height: int, side: int,
               grid: int) -> np.ndarray:
    """Row-major indices of the grid cells a pixel box (in side x side frames) covers."""
    x0, y0 = left * grid // side, top * grid // side
    x1 = max(x0 + 1, -(-(left + width) * grid // side))
    y1 = max(y0 + 1, -(-(top + height) * grid // side))
    cols, rows = np.arange(x0, min(x1, grid)), np.arange(y0, min(y1, grid))
    return (rows[:, None] * grid + cols[None, :]).reshape(-1)


class Alpro(Method[AlproOptions]):
    name = "alpro"
    Options = AlproOptions

    def read_facts(self) -> dict[str, Any]:
        reader = self.reader
        reader.require("clip_frames", "texts")
        schema = reader.schema("clip_frames")
        facts: dict[str, Any] = {"frame_dim": dim_of(schema, "embedding"),
                                 "vocab": vocab_from_store(reader, "bert_ids").to_dict(),
                                 "max_frames": 64, "pem": False}
        opts = self.opts
        if opts.vtc_only or not opts.pem:
            return facts
        tables = reader.tables()
        if not {"soft_labels", "entities"} <= tables or "patch_tokens" not in schema.names:
            log.warning("alpro: PEM is off (needs soft_labels, entities and clip_frames patch "
                        "tokens in the store); training VTC only")
            return facts
        recipe = load_recipe(reader)
        prompter = stage_of(recipe, "prompter") or {}
        side = frame_side(recipe, prompter.get("options", {}).get("frames", "frames"))
        if side is None:
            log.warning("alpro: PEM is off (the recipe does not say the frame size)")
            return facts
        facts.update(pem=True, patch_dim=dim_of(schema, "patch_tokens"), frame_side=side,
                     num_entities=reader.count_rows("entities"),
                     full_labels="probs_full" in reader.schema("soft_labels").names)
        return facts

    @property
    def vocab(self) -> Vocab:
        return Vocab(**self.facts["vocab"])

    def read_spec(self) -> ReadSpec:
        frames = ["sample_rank", "frame_index", "embedding"]
        columns = {"clip_frames": frames, "texts": ["segment", "source", "bert_ids"]}
        if self.facts["pem"]:
            columns["clip_frames"] = [*frames, "patch_grid", "patch_tokens"]
            columns["soft_labels"] = SOFT_COLUMNS + ["frame_indices"] + (
                ["probs_full"] if self.facts.get("full_labels") else [])
        return ReadSpec("clip_frames", columns, frozenset({"clip_frames", "texts"}))

    def eval_read_spec(self) -> ReadSpec:
        return ReadSpec("clip_frames", {"clip_frames": ["sample_rank", "embedding"],
                                        "texts": ["segment", "source", "bert_ids"]},
                        frozenset({"clip_frames", "texts"}))

    # samples ---------------------------------------------------------------------------------
    def _texts(self, rows: VideoRows) -> list[list[int]]:
        """Captions (by segment) when the video has any, else its transcript lines."""
        texts = sorted_by(rows.tables["texts"], "segment").to_pylist()
        good = [t for t in texts if t["bert_ids"]]
        captions = [t["bert_ids"] for t in good if t["source"] == "caption"]
        return captions or [t["bert_ids"] for t in good]

    def train_samples(self, rows: VideoRows, rng: random.Random) -> Iterable[dict[str, Any]]:
        texts = self._texts(rows)
        if not texts:
            return
        frames = sorted_by(rows.tables["clip_frames"], "sample_rank").slice(
            0, self.facts["max_frames"])
        emb = vectors(frames, "embedding")
        pick = headtail(len(emb), self.opts.train_frames, rng)
        sample = {"frames": emb[pick],
                  "ids": with_specials(self.vocab, rng.choice(texts), self.opts.max_text_len)}
        if self.facts["pem"] and "soft_labels" in rows.tables:
            sample.update(self._pem_target(frames, rows.tables["soft_labels"], rng))
        yield sample

    def _pem_target(self, frames, soft, rng: random.Random) -> dict[str, Any]:
        crops = [c for c in soft.to_pylist() if not c["low_confidence"] and c["entity_ids"]]
        if not crops or frames.column("patch_tokens").null_count:
            return {}
        crop = rng.choice(crops)
        grid = int(frames.column("patch_grid")[0].as_py())
        cells = crop_cells(crop["left"], crop["top"], crop["width"], crop["height"],
                           self.facts["frame_side"], grid)
        tokens = vector_lists(frames, "patch_tokens")
        wanted = set(crop["frame_indices"] or [])
        index = frames.column("frame_index").to_pylist()
        per_frame = [t[cells].mean(0) for t, i in zip(tokens, index, strict=True)
                     if not wanted or i in wanted]
        target = np.zeros(self.facts["num_entities"], np.float32)
        full = crop.get("probs_full")
        if full is not None and len(full) == len(target):  # store_full: ALPRO's whole target
            target[:] = np.asarray(full, np.float32)
        else:  # the top-k, renormalised below
            ids = np.asarray(crop["entity_ids"])
            keep = ids < len(target)
            target[ids[keep]] = np.asarray(crop["probs"], np.float32)[keep]
        if target.sum() <= 0:
            return {}
        return {"crop": np.stack(per_frame), "target": target / target.sum()}

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        frames, mask = pad_sequences([s["frames"] for s in samples])
        ids, text_mask, _ = pad_batch(self.vocab, [s["ids"] for s in samples])
        batch = {"frames": frames, "frame_mask": mask, "ids": ids, "text_mask": text_mask}
        with_crop = [s for s in samples if "crop" in s]
        if with_crop:
            batch["crops"], batch["crop_mask"] = pad_sequences([s["crop"] for s in with_crop])
            batch["targets"] = torch.from_numpy(np.stack([s["target"] for s in with_crop]))
        return batch

    def eval_samples(self, rows: VideoRows, rng: random.Random) -> Iterable[dict[str, Any]]:
        texts = self._texts(rows)
        if texts:
            frames = sorted_by(rows.tables["clip_frames"], "sample_rank")
            emb = vectors(frames.slice(0, self.facts["max_frames"]), "embedding")
            yield {"frames": emb, "ids": with_specials(self.vocab, texts[0],
                                                       self.opts.max_text_len)}

    # model -----------------------------------------------------------------------------------
    def build_model(self) -> AlproModel:
        o = self.opts
        f = self.facts
        return AlproModel(f["frame_dim"], f["vocab"], o.dim, o.embed_dim, o.layers,
                          o.text_layers, o.heads, f["max_frames"], o.max_text_len, o.dropout,
                          o.temperature, o.vtc_only, f.get("patch_dim", 0) if f["pem"] else 0,
                          f.get("num_entities", 0) if f["pem"] else 0)

    def losses(self, model: AlproModel, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        video = model.video_features(batch["frames"], batch["frame_mask"])
        text = model.text_features(batch["ids"], batch["text_mask"])
        temperature = model.temp()
        terms = {"vtc": vtc(video, text, temperature)}
        loss = terms["vtc"]
        if "crops" in batch and getattr(model, "pem", False):
            logits = model.pem_logits(batch["crops"], batch["crop_mask"])
            terms["pem"] = soft_cross_entropy(logits, batch["targets"])
            loss = loss + self.opts.pem_weight * terms["pem"]
        terms["temperature"] = temperature.detach()
        terms["loss"] = loss
        return terms

    def encode_eval(self, model: AlproModel, batch: dict[str, Any]):
        return (model.text_features(batch["ids"], batch["text_mask"]),
                model.video_features(batch["frames"], batch["frame_mask"]))

    def after_training(self, model: AlproModel, out: Path) -> dict[str, Any]:
        if not self.opts.vtc_only:
            return {}
        from vlprep.train.prompter_export import export_for_store

        path = export_for_store(self.reader, model, self.vocab, out / "prompter")
        return {"prompter": str(path)} if path is not None else {}

