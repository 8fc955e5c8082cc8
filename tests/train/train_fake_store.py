"""Small stores written through the real Store (commit records and all), with features that
carry a learnable signal: each video has a label, its features lean towards the label's
direction and its texts contain the label's word. Fast to build, no Ray, no models."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from vlprep.columns import list_of_vectors
from vlprep.schemas import TABLES, with_vector_dims
from vlprep.store import Store

START, END = 1, 2  # CLIP-style start/end ids of the fake texts
WORDS = 10  # label word ids start here (bert_ids and clip_ids alike)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def video_tables(video_id: str, label: int, rng: np.random.Generator, *, dim: int = 16,
                 frames: int = 4, grid: int = 3, patch_dim: int = 8, seconds: int = 6,
                 s3d_dim: int = 24, labels: int = 8, noise: float = 0.3,
                 tables: tuple[str, ...] = ("clip_frames", "texts"),
                 full_probs: bool = False) -> dict[str, pa.Table]:
    """The rows one fake video has in each of `tables`."""
    out: dict[str, pa.Table] = {}
    direction = np.random.default_rng(1000 + label).normal(size=max(dim, s3d_dim, patch_dim))
    if "clip_frames" in tables:
        emb = _unit(direction[:dim] + noise * rng.normal(size=(frames, dim))).astype(np.float16)
        tokens = (direction[:patch_dim] + noise * rng.normal(size=(frames, grid * grid,
                                                                   patch_dim)))
        schema = with_vector_dims(TABLES["clip_frames"], embedding=dim)
        schema = with_vector_dims(schema, patch_tokens=patch_dim)
        out["clip_frames"] = pa.Table.from_arrays([
            pa.array([video_id] * frames), pa.array(np.arange(frames, dtype=np.int32) * 10),
            pa.array(np.arange(frames, dtype=np.float32)), pa.array(np.arange(frames,
                                                                              dtype=np.int16)),
            pa.FixedSizeListArray.from_arrays(pa.array(emb.reshape(-1)), dim),
            pa.array([grid] * frames, pa.int16()),
            list_of_vectors(tokens.astype(np.float16), np.arange(frames + 1) * grid * grid,
                            patch_dim, pa.float16()),
        ], schema=schema)
    if "texts" in tables:
        word = WORDS + label
        rows = [{"video_id": video_id, "segment": 0, "source": "caption",
                 "text": f"thing {label}", "start": None, "end": None,
                 "bert_ids": [5, word, 6], "clip_ids": [START, 5, word, 6, END],
                 "clip_pos": [0, 0, 1, 2, 0], "nouns": ["thing"], "verbs": []}]
        half = seconds / 2
        for k, (start, end) in enumerate([(0.0, half), (half, float(seconds))]):
            rows.append({"video_id": video_id, "segment": k + 1, "source": "transcript",
                         "text": f"line {k}", "start": start, "end": end,
                         "bert_ids": [7, word, 8, 9], "clip_ids": [START, 7, word, 8, END],
                         "clip_pos": [0, 0, 1, 0, 0], "nouns": [], "verbs": []})
        out["texts"] = pa.Table.from_pylist(rows, schema=TABLES["texts"])
    if "s3d" in tables:
        feats = (direction[:s3d_dim] + noise * rng.normal(size=(seconds, s3d_dim)))
        schema = with_vector_dims(TABLES["s3d"], features=s3d_dim)
        out["s3d"] = pa.Table.from_arrays([
            pa.array([video_id]), pa.array([seconds], pa.int32()),
            pa.array([list(map(float, range(seconds)))], pa.list_(pa.float32())),
            pa.array([list(map(float, range(1, seconds + 1)))], pa.list_(pa.float32())),
            list_of_vectors(feats.astype(np.float16), np.array([0, seconds]), s3d_dim,
                            pa.float16()),
            pa.nulls(1, schema.field("mixed_5c").type),
        ], schema=schema)
    if "trajectories" in tables:
        boxes = [[10.0, 10.0, 60.0, 60.0]] * frames
        out["trajectories"] = pa.Table.from_pylist([{
            "video_id": video_id, "trajectory": 0, "class_id": 1 + label % 3,
            "class_name": "thing", "confidence": 1.0, "first_frame": 0, "frame_size": 96,
            "frame_index": [i * 10 for i in range(frames)], "boxes": boxes,
            "scores": [0.9] * frames, "mask": [True] * frames}], schema=TABLES["trajectories"])
    if "soft_labels" in tables:
        out["soft_labels"] = pa.Table.from_pylist([{
            "video_id": video_id, "crop": c, "left": 0, "top": 0, "width": 48, "height": 48,
            "frame_indices": [i * 10 for i in range(frames)], "templates": "video",
            "entity_ids": [label % labels, (label + 1) % labels], "probs": [0.7, 0.3],
            "top_prob": 0.7, "low_confidence": c == 1,
            "probs_full": [1.0 / labels] * labels if full_probs else None} for c in range(2)],
            schema=TABLES["soft_labels"])
    return out


def write_store(root: Path, count: int, *, partition_size: int = 8,
                target_file_bytes: int = 1 << 20, seed: int = 0, labels: int = 8,
                **kwargs) -> Path:
    """`count` videos (labels round-robin) written partition by partition and committed."""
    store = Store(str(root))
    store.fs.create_dir(store.root)
    rng = np.random.default_rng(seed)
    for pid, first in enumerate(range(0, count, partition_size)):
        parts: dict[str, list[pa.Table]] = {}
        ids = range(first, min(count, first + partition_size))
        for i in ids:
            for name, table in video_tables(f"v{i:05d}", i % labels, rng, labels=labels,
                                            **kwargs).items():
                parts.setdefault(name, []).append(table)
        tables = {name: pa.concat_tables(t) for name, t in parts.items()}
        if "soft_labels" in tables and pid == 0:
            tables["entities"] = pa.Table.from_pylist(
                [{"video_id": "", "rank": r, "lemma": f"e{r}", "count": 1}
                 for r in range(labels)], schema=TABLES["entities"])
        store.write_partition(pid, len(ids), tables, target_file_bytes)
    return root
