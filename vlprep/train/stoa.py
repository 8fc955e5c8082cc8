"""STOA-VLP from the store: frames, object trajectories, action queries and text tokens.

Reads `clip_frames` (frame embeddings and the patch tokens entering CLIP's last block),
`trajectories` (per object class: a box per sampled frame), `regions` when present (the
frame's detected boxes, the objects the action queries see; without it, the trajectories'
boxes of that frame) and `texts` (CLIP BPE ids with a noun/verb tag per token). Object
features are RoIAlign (torchvision) of each box on the frame's patch-token grid, as STOA-VLP
pools them (spatial scale grid / frame size). See :mod:`vlprep.train.stoa_model`.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torchvision.ops import roi_align

from vlprep.store.fs import StoreError
from vlprep.train.arrays import dim_of, pad_sequences, sorted_by, vector_lists, vectors
from vlprep.train.data import ReadSpec, VideoRows
from vlprep.train.losses import matched_mse, vtc
from vlprep.train.method import Method
from vlprep.train.stoa_model import StoaModel
from vlprep.train.text import Vocab, known_ids, pad_batch, vocab_from_store

NOUN, VERB = 1, 2  # clip_pos codes (vlprep.text.pos)
TRAJ_COLUMNS = ["trajectory", "frame_size", "frame_index", "boxes", "mask"]
REGION_COLUMNS = ["frame_index", "width", "height", "boxes", "scores"]


@dataclass
class StoaOptions:
    dim: int = 256
    layers: int = 2
    text_layers: int = 2
    heads: int = 4
    actions: int = 4  # STOA-VLP's action queries
    max_trajectories: int = 20
    max_objects: int = 10  # objects per frame the action queries see
    max_text_len: int = 77
    dropout: float = 0.1
    temperature: float = 0.07
    noun_weight: float = 1.0
    verb_weight: float = 1.0
    roi_size: int = 2  # RoIAlign output side, averaged to one vector


def roi_features(patches: np.ndarray, boxes: np.ndarray, scale: Any, size: int) -> np.ndarray:
    """Mean RoIAlign features: patches F x P x H (P = g*g), boxes N x 5 (frame position,
    x1, y1, x2, y2 in pixels), scale (g / width, g / height), one pair or one per box
    -> N x H."""
    if len(boxes) == 0:
        return np.zeros((0, patches.shape[2]), np.float32)
    f, p, h = patches.shape
    g = int(round(p ** 0.5))
    grid = torch.from_numpy(np.ascontiguousarray(patches, np.float32)).view(f, g, g, h)
    rois = torch.from_numpy(np.asarray(boxes, np.float32).copy())
    scales = torch.from_numpy(np.broadcast_to(np.asarray(scale, np.float32),
                                              (len(rois), 2)).copy())
    rois[:, [1, 3]] *= scales[:, :1]
    rois[:, [2, 4]] *= scales[:, 1:]
    out = roi_align(grid.permute(0, 3, 1, 2), rois, size, spatial_scale=1.0,
                    sampling_ratio=2, aligned=True)
    return out.mean((2, 3)).numpy()


class Stoa(Method[StoaOptions]):
    name = "stoa"
    Options = StoaOptions

    def read_facts(self) -> dict[str, Any]:
        reader = self.reader
        reader.require("clip_frames", "trajectories", "texts")
        schema = reader.schema("clip_frames")
        if "patch_tokens" not in schema.names:
            raise StoreError(f"store {reader.uri}: clip_frames has no patch tokens: run the clip "
                             "stage with patch_tokens: full (STOA pools objects from them)")
        return {"frame_dim": dim_of(schema, "embedding"),
                "patch_dim": dim_of(schema, "patch_tokens"),
                "vocab": vocab_from_store(reader, "clip_ids").to_dict(),
                "regions": "regions" in reader.tables(), "max_frames": 32}

    @property
    def vocab(self) -> Vocab:
        return Vocab(**self.facts["vocab"])

    def read_spec(self) -> ReadSpec:
        columns = {"clip_frames": ["sample_rank", "frame_index", "embedding", "patch_tokens"],
                   "trajectories": TRAJ_COLUMNS,
                   "texts": ["segment", "source", "clip_ids", "clip_pos"]}
        if self.facts["regions"]:
            columns["regions"] = REGION_COLUMNS
        return ReadSpec("clip_frames", columns, frozenset({"clip_frames", "texts"}))

    # samples ---------------------------------------------------------------------------------
    def _texts(self, rows: VideoRows) -> list[tuple[list[int], list[int]]]:
        texts = [t for t in sorted_by(rows.tables["texts"], "segment").to_pylist()
                 if t["clip_ids"]]
        captions = [t for t in texts if t["source"] == "caption"] or texts
        cut = self.opts.max_text_len
        return [(known_ids(self.vocab, t["clip_ids"])[:cut], list(t["clip_pos"] or [])[:cut])
                for t in captions]

    def _video(self, rows: VideoRows) -> dict[str, Any] | None:
        o = self.opts
        frames = sorted_by(rows.tables["clip_frames"], "sample_rank")
        frames = frames.slice(0, self.facts["max_frames"])
        if frames.column("patch_tokens").null_count:
            return None
        patches = np.stack(vector_lists(frames, "patch_tokens"))
        position = {int(i): k for k, i in enumerate(frames.column("frame_index").to_pylist())}
        g = int(round(patches.shape[1] ** 0.5))
        objects = np.zeros((0, len(frames), patches.shape[2]), np.float32)
        present = np.zeros((0, len(frames)), bool)
        traj_boxes: list[list[float]] = []  # frame position, box, x and y scale
        if "trajectories" in rows.tables:
            trajs = sorted_by(rows.tables["trajectories"], "trajectory").slice(
                0, o.max_trajectories).to_pylist()
            objects = np.zeros((len(trajs), len(frames), patches.shape[2]), np.float32)
            present = np.zeros((len(trajs), len(frames)), bool)
            where = []  # (trajectory, frame position) of each box, in traj_boxes order
            for j, t in enumerate(trajs):
                scale = g / t["frame_size"]
                for index, box, here in zip(t["frame_index"], t["boxes"], t["mask"],
                                            strict=True):
                    if here and int(index) in position:
                        traj_boxes.append([position[int(index)], *box, scale, scale])
                        where.append((j, position[int(index)]))
            rois = np.asarray(traj_boxes, np.float32).reshape(-1, 7)
            feats = roi_features(patches, rois[:, :5], rois[:, 5:], o.roi_size)
            for (j, f), feat in zip(where, feats, strict=True):
                objects[j, f] = feat
                present[j, f] = True
        frame_objects, object_mask = self._frame_objects(rows, patches, position, g,
                                                         traj_boxes)
        return {"frames": vectors(frames, "embedding"), "patches": patches.astype(np.float16),
                "objects": objects.astype(np.float16), "present": present,
                "frame_objects": frame_objects.astype(np.float16), "object_mask": object_mask}

    def _frame_objects(self, rows: VideoRows, patches: np.ndarray, position: dict[int, int],
                       g: int, traj_boxes: list[list[float]]) -> tuple[np.ndarray, np.ndarray]:
        """Per frame, up to max_objects object features for the action queries."""
        k = self.opts.max_objects
        per_frame: dict[int, list[list[float]]] = {}
        if "regions" in rows.tables:
            for r in rows.tables["regions"].to_pylist():
                if int(r["frame_index"]) in position:
                    order = np.argsort(-np.asarray(r["scores"]))[:k]
                    f = position[int(r["frame_index"])]
                    per_frame[f] = [[f, *r["boxes"][i], g / r["width"], g / r["height"]]
                                    for i in order]
        else:
            for box in traj_boxes:
                per_frame.setdefault(int(box[0]), []).append(box)
        out = np.zeros((len(patches), k, patches.shape[2]), np.float32)
        mask = np.zeros((len(patches), k), bool)
        slots = [(f, n) for f, boxes in per_frame.items() for n in range(min(k, len(boxes)))]
        if slots:
            rois = np.asarray([per_frame[f][n] for f, n in slots], np.float32)
            feats = roi_features(patches, rois[:, :5], rois[:, 5:],
                                 self.opts.roi_size)
            for (f, n), feat in zip(slots, feats, strict=True):
                out[f, n] = feat
                mask[f, n] = True
        return out, mask

    def train_samples(self, rows: VideoRows, rng: random.Random) -> Iterable[dict[str, Any]]:
        texts = self._texts(rows)
        video = self._video(rows) if texts else None
        if video is not None:
            ids, pos = rng.choice(texts)
            yield {**video, "ids": ids, "pos": pos}

    def eval_samples(self, rows: VideoRows, rng: random.Random) -> Iterable[dict[str, Any]]:
        texts = self._texts(rows)
        video = self._video(rows) if texts else None
        if video is not None:
            yield {**video, "ids": texts[0][0], "pos": texts[0][1]}

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        frames, frame_mask = pad_sequences([s["frames"] for s in samples])
        f = frames.shape[1]
        b, p, h = len(samples), samples[0]["patches"].shape[1], samples[0]["patches"].shape[2]
        j = max(1, max(len(s["objects"]) for s in samples))
        k = samples[0]["frame_objects"].shape[1]
        patches = torch.zeros(b, f, p, h)
        objects, present = torch.zeros(b, j, f, h), torch.zeros(b, j, f, dtype=torch.bool)
        frame_objects = torch.zeros(b, f, k, h)
        object_mask = torch.zeros(b, f, k, dtype=torch.bool)
        for i, s in enumerate(samples):
            n, m = len(s["patches"]), len(s["objects"])
            patches[i, :n] = torch.from_numpy(s["patches"].astype(np.float32))
            objects[i, :m, :n] = torch.from_numpy(s["objects"].astype(np.float32))
            present[i, :m, :n] = torch.from_numpy(s["present"])
            frame_objects[i, :n] = torch.from_numpy(s["frame_objects"].astype(np.float32))
            object_mask[i, :n] = torch.from_numpy(s["object_mask"])
        ids, text_mask, pos = pad_batch(self.vocab, [s["ids"] for s in samples],
                                        [s["pos"] for s in samples])
        return {"frames": frames, "frame_mask": frame_mask, "patches": patches,
                "objects": objects, "present": present, "frame_objects": frame_objects,
                "object_mask": object_mask, "ids": ids, "text_mask": text_mask, "pos": pos}

    # model -----------------------------------------------------------------------------------
    def build_model(self) -> StoaModel:
        o = self.opts
        f = self.facts
        return StoaModel(f["frame_dim"], f["patch_dim"], f["vocab"], o.dim, o.layers,
                         o.text_layers, o.heads, o.actions, f["max_frames"], o.max_trajectories,
                         o.max_text_len, o.dropout, o.temperature)

    def losses(self, model: StoaModel, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        o = self.opts
        video = model.video(batch)
        tokens, text = model.text_tokens(batch["ids"], batch["text_mask"])
        temperature = model.temp()
        terms = {"vtc": vtc(video["vector"], text, temperature)}
        pos = batch["pos"] * batch["text_mask"]
        trajs = [video["trajectories"][i][video["trajectory_mask"][i]] for i in range(len(pos))]
        nouns = [tokens[i][pos[i] == NOUN] for i in range(len(pos))]
        verbs = [tokens[i][pos[i] == VERB] for i in range(len(pos))]
        terms["nouns"] = matched_mse(trajs, nouns)
        terms["verbs"] = matched_mse(list(video["actions"]), verbs)
        terms["loss"] = (terms["vtc"] + o.noun_weight * terms["nouns"]
                         + o.verb_weight * terms["verbs"])
        terms["temperature"] = temperature.detach()
        return terms

    def encode_eval(self, model: StoaModel, batch: dict[str, Any]):
        return (model.text_tokens(batch["ids"], batch["text_mask"])[1],
                model.video(batch)["vector"])
