"""VideoCLIP from the store: overlapped clips of `s3d` seconds and timed `texts`.

Reads `s3d` (one 512-d S3D vector per second) and `texts` (``bert_ids`` with start/end;
videos without a transcript use their captions as one line over the whole video). Model:
an MLP of the S3D features into a video transformer, a text transformer over BERT ids,
mean pooling on both sides, symmetric InfoNCE on the dot products of the pooled vectors
(MMPT's ``MMContraLoss``). Batches are retrieval-augmented (:mod:`retrieval_batches`) or,
with ``batching: random``, plain. Evaluation follows VideoCLIP's zero-shot MSR-VTT protocol:
the first 32 s of video against the caption, scored by dot product.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from vlprep.train.arrays import dim_of, pad_sequences, sorted_by, vector_lists
from vlprep.train.data import ReadSpec, VideoRows
from vlprep.train.encoders import FeatureEncoder, TextEncoder, masked_mean
from vlprep.train.losses import symmetric_infonce
from vlprep.train.method import Method, to_device
from vlprep.train.retrieval_batches import build_index, random_groups, retrieval_groups
from vlprep.train.text import Vocab, known_ids, pad_batch, vocab_from_store, with_specials
from vlprep.train.videoclip_clips import ClipParams, Line, overlapped_clip

EVAL_SECONDS = 32  # MSR-VTT protocol: the first 32 s


@dataclass
class VideoClipOptions:
    dim: int = 256
    layers: int = 2
    text_layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    min_text_tokens: int = 8
    max_text_tokens: int = 64
    min_video_seconds: int = 3
    max_video_seconds: int = 32
    batching: str = "retrieval"  # or "random"; a batch is --batch-size videos (MMPT: 32) ...
    candidates: int = 64  # ... drawn from the seed and its 64 nearest (MMPT's num_cands)
    clips_per_video: int = 16  # clips of each video in a batch (MMPT's clip_per_video)
    pool_size: int = 4096  # videos per FAISS index (bounded memory)
    ivf_lists: int = 512
    nprobe: int = 1  # IVF lists searched (MMPT leaves FAISS's default, 1)
    vector_clips: int = 16  # clips averaged into a video's retrieval vector (MMPT: 16)
    # MMPT scores raw dot products of BERT-initialised towers; small towers trained from
    # scratch collapse that way, so by default the pooled vectors are L2-normalised and the
    # logits divided by this temperature (0: MMPT's raw dot product)
    temperature: float = 0.05


class VideoClipModel(nn.Module):
    def __init__(self, feature_dim: int, vocab: dict[str, Any], o: VideoClipOptions):
        super().__init__()
        self.normalize = o.temperature > 0
        self.scale = 1.0 / o.temperature if self.normalize else 1.0
        self.video = FeatureEncoder(feature_dim, o.dim, o.layers, o.heads,
                                    max(o.max_video_seconds, EVAL_SECONDS), o.dropout)
        self.text = TextEncoder(vocab["size"], o.dim, o.text_layers, o.heads,
                                o.max_text_tokens + 2, vocab["pad"], o.dropout)

    def _out(self, pooled: torch.Tensor) -> torch.Tensor:
        return F.normalize(pooled, dim=-1) if self.normalize else pooled

    def video_vectors(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean-pooled video tokens (normalised unless MMPT's raw dot product is asked for)."""
        return self._out(masked_mean(self.video(x, mask), mask))

    def text_vectors(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        return self._out(masked_mean(self.text(ids, mask), mask))


class VideoClip(Method[VideoClipOptions]):
    name = "videoclip"
    Options = VideoClipOptions
    default_batch_size = 32  # videos per batch (MMPT's num_video_per_batch), x clips_per_video

    def read_facts(self) -> dict[str, Any]:
        self.reader.require("s3d", "texts")
        return {"feature_dim": dim_of(self.reader.schema("s3d"), "features"),
                "vocab": vocab_from_store(self.reader, "bert_ids").to_dict()}

    @property
    def vocab(self) -> Vocab:
        return Vocab(**self.facts["vocab"])

    @property
    def params(self) -> ClipParams:
        o = self.opts
        return ClipParams(o.min_text_tokens, o.max_text_tokens, o.min_video_seconds,
                          o.max_video_seconds)

    def read_spec(self) -> ReadSpec:
        return ReadSpec("s3d", {"s3d": ["features"],
                                "texts": ["segment", "source", "start", "end", "bert_ids"]},
                        frozenset({"s3d", "texts"}))

    # per-video items and clips ---------------------------------------------------------------
    def _item(self, rows: VideoRows) -> dict[str, Any] | None:
        features = vector_lists(rows.tables["s3d"], "features")[0]
        texts = sorted_by(rows.tables["texts"], "segment").to_pylist()
        if len(features) == 0:
            return None
        vocab = self.vocab
        lines = sorted((Line(float(t["start"]), float(t["end"]), tuple(known_ids(vocab,
                        t["bert_ids"]))) for t in texts if t["source"] == "transcript"
                        and t["bert_ids"] and t["start"] is not None and t["end"] is not None),
                       key=lambda line: (line.start, line.end))
        captions = [known_ids(vocab, t["bert_ids"]) for t in texts
                    if t["source"] == "caption" and t["bert_ids"]]
        if not lines:
            lines = [Line(0.0, float(len(features)), tuple(c)) for c in captions[:1]]
        if not lines:
            return None
        return {"video_id": rows.video_id, "features": features.astype(np.float16),
                "lines": lines, "captions": captions}

    def train_samples(self, rows: VideoRows, rng: random.Random) -> Iterable[dict[str, Any]]:
        item = self._item(rows)
        if item is not None:
            yield item

    def clip(self, item: dict[str, Any], rng: random.Random) -> dict[str, Any]:
        clip = overlapped_clip(item["lines"], len(item["features"]), rng, self.params)
        return {"video": item["features"][clip.start:clip.end].astype(np.float32),
                "ids": with_specials(self.vocab, clip.ids, self.params.max_text_tokens + 2)}

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        video, video_mask = pad_sequences([s["video"] for s in samples])
        ids, text_mask, _ = pad_batch(self.vocab, [s["ids"] for s in samples])
        return {"video": video, "video_mask": video_mask, "ids": ids, "text_mask": text_mask}

    def eval_samples(self, rows: VideoRows, rng: random.Random) -> Iterable[dict[str, Any]]:
        item = self._item(rows)
        if item is None or not item["captions"]:
            return
        yield {"video": item["features"][:EVAL_SECONDS].astype(np.float32),
               "ids": with_specials(self.vocab, item["captions"][0],
                                    self.params.max_text_tokens + 2)}

    # batches -----------------------------------------------------------------------------------
    videos_per_batch = 32
    records: list[dict[str, Any]] = []

    def loader_batch_size(self, batch_size: int) -> int | None:
        self.videos_per_batch = batch_size
        return None  # the loader yields videos; batches are made from pools of them

    def train_batches(self, loader: Iterable[Any], model: nn.Module,
                      epoch: int) -> Iterator[dict[str, Any]]:
        rng = random.Random(f"videoclip-batches:{epoch}")
        self.records = []
        pool: list[dict[str, Any]] = []
        for item in loader:
            pool.append(item)
            if len(pool) >= self.opts.pool_size:
                yield from self.pool_batches(pool, model, rng)
                pool = []
        if pool:
            yield from self.pool_batches(pool, model, rng)

    def groups(self, pool: list[dict[str, Any]], model: nn.Module,
               rng: random.Random) -> list[list[int]]:
        o = self.opts
        size = self.videos_per_batch
        if o.batching not in ("retrieval", "random"):
            raise ValueError(f"videoclip: batching {o.batching!r}: expected retrieval or random")
        if o.batching == "random" or len(pool) <= size:
            return random_groups(len(pool), size, rng)
        vectors = self.pool_vectors(pool, model, rng)
        index = build_index(vectors, o.ivf_lists, o.nprobe)
        return retrieval_groups(vectors, size, o.candidates, rng, index)

    def pool_batches(self, pool: list[dict[str, Any]], model: nn.Module,
                     rng: random.Random) -> Iterator[dict[str, Any]]:
        groups = self.groups(pool, model, rng)
        if not self.records and len(pool) > self.videos_per_batch:  # the epoch's first pool
            baseline = random_groups(len(pool), self.videos_per_batch, random.Random(0))
            record: dict[str, Any] = {"kind": "batches", "batching": self.opts.batching}
            for name, grouping in (("batches", groups), ("random", baseline)):
                for key, value in self.difficulty(pool, grouping, model).items():
                    record[f"{name}_{key}"] = value
            self.records.append(record)
        clips = self.opts.clips_per_video
        for group in groups:
            if len(group) >= 2:
                yield self.collate([self.clip(pool[i], rng) for i in group
                                    for _ in range(clips)])

    @torch.no_grad()
    def difficulty(self, pool: list[dict[str, Any]], groups: list[list[int]],
                   model: nn.Module) -> dict[str, float]:
        """How hard batches are for the current model: mean in-batch InfoNCE loss and mean
        rank of the right video among the batch's (1 = easiest), one clip per video drawn
        with a fixed seed so that two groupings of one pool compare like with like."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        losses, positions = [], []
        for n, group in enumerate(groups):
            if len(group) < 2:
                continue
            rng = random.Random(n)
            batch = to_device(self.collate([self.clip(pool[i], rng) for i in group]), device)
            v = model.video_vectors(batch["video"], batch["video_mask"])
            t = model.text_vectors(batch["ids"], batch["text_mask"])
            losses.append(float(symmetric_infonce(v, t, model.scale)))
            sim = t @ v.t()
            positions.append(float((sim >= sim.diag()[:, None]).sum(1).float().mean()))
        model.train(was_training)
        return {"loss": float(np.mean(losses)), "rank": float(np.mean(positions))}

    @torch.no_grad()
    def pool_vectors(self, pool: list[dict[str, Any]], model: nn.Module,
                     rng: random.Random, chunk: int = 256) -> np.ndarray:
        """MMPT's video vectors: mean over clips of (pooled video + pooled text) / 2."""
        was_training = model.training
        model.eval()
        device = next(model.parameters()).device
        clips = self.opts.vector_clips
        samples = [self.clip(item, rng) for item in pool for _ in range(clips)]
        out = []
        for i in range(0, len(samples), chunk):
            batch = to_device(self.collate(samples[i:i + chunk]), device)
            v = model.video_vectors(batch["video"], batch["video_mask"])
            t = model.text_vectors(batch["ids"], batch["text_mask"])
            out.append(((v + t) / 2).float().cpu())
        model.train(was_training)
        return torch.cat(out).view(len(pool), clips, -1).mean(1).numpy()

    # model -----------------------------------------------------------------------------------
    def build_model(self) -> VideoClipModel:
        return VideoClipModel(self.facts["feature_dim"], self.facts["vocab"],
                              self.opts)

    def losses(self, model: VideoClipModel, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        video = model.video_vectors(batch["video"], batch["video_mask"])
        text = model.text_vectors(batch["ids"], batch["text_mask"])
        loss = symmetric_infonce(video, text, model.scale)
        return {"loss": loss, "infonce": loss.detach()}

    def encode_eval(self, model: VideoClipModel, batch: dict[str, Any]):
        return (model.text_vectors(batch["ids"], batch["text_mask"]),
                model.video_vectors(batch["video"], batch["video_mask"]))
