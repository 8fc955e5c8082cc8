"""A small seeded store in the exact table schemas, written through the real Store (commit
records, several partitions, several files per partition), for the export tests. No Ray.

Eight videos in partitions of three. Texts cover the cases the exports treat differently:
v0 caption + timed transcript, v1 caption only, v2 no bert_ids, v3 over-long bert_ids,
v5 texts but no S3D, v7 no texts at all and an S3D row with no window. v6 has no
`regions`; v0 has a frame with no boxes. Captions carry CLIP ids and per-token POS codes
(start/end of text included), except v2's. The label map repeats "N/A" (as COCO's does), which
exports name "N/A" and "N/A_10" (EXPORTED_NAMES).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa

from vlprep.columns import list_of_vectors
from vlprep.schemas import TABLES, with_vector_dims
from vlprep.store import Store

VIDEOS = [f"v{i}" for i in range(8)]
PARTITION = 3
FRAMES = 4
REGION_DIM = 32
WIDTH, HEIGHT = 320, 240
CLASSES = ["__background__", "man", "dog", "car", "tree", "ball", "N/A", "hat", "shoe", "bike",
           "N/A", "lamp", "sky"]
EXPORTED_NAMES = ["__background__", "man", "dog", "car", "tree", "ball", "N/A", "hat", "shoe",
                  "bike", "N/A_10", "lamp", "sky"]
CAPTION_POS = [0, 0, 1, 2, 1, 0, 0, 0, 1, 0]  # start of text, 8 caption tokens, end of text
ATTRIBUTES = ["__no_attribute__", "white", "black", "wooden", "red", "green", "large"]
RULES = {"max_objects": 5, "candidates": 8, "max_trajectories": 6, "same_class_iou": 0.2,
         "cross_class_iou": 0.5, "frame_size": 224}


def _texts(vid: str, rng: np.random.Generator) -> list[dict]:
    i = int(vid[1:])
    if i == 7:
        return []
    rows = [{"source": "caption", "text": f"a caption of video {vid} with a dog",
             "start": None, "end": None,
             "bert_ids": None if i == 2 else rng.integers(100, 900, 6).tolist()}]
    if i in (0, 3, 4, 6):
        for k in range(3):
            n_ids = 40 if i == 3 else int(rng.integers(3, 12))
            rows.append({"source": "transcript", "text": f"line {k} of {vid}",
                         "start": 1.5 * k, "end": 1.5 * k + 2.0,
                         "bert_ids": rng.integers(100, 900, n_ids).tolist()})
    pos = None if i == 2 else CAPTION_POS
    return [{"video_id": vid, "segment": s, **r,
             "clip_ids": None if s or pos is None else list(range(49406, 49406 + len(pos))),
             "clip_pos": None if s else pos, "nouns": ["dog"], "verbs": []}
            for s, r in enumerate(rows)]


def _s3d(vid: str, rng: np.random.Generator) -> pa.Table:
    n = 0 if vid == "v7" else int(rng.integers(1, 9))
    feats = rng.normal(size=(n, 512)).astype(np.float16)
    return pa.Table.from_arrays([
        pa.array([vid]), pa.array([n], pa.int32()),
        pa.array([np.arange(n, dtype=np.float32)]), pa.array([np.arange(n, dtype=np.float32) + 1]),
        list_of_vectors(feats, [0, n], 512, pa.float16()),
        pa.nulls(1, TABLES["s3d"].field("mixed_5c").type),
    ], schema=TABLES["s3d"])


def _boxes(k: int, rng: np.random.Generator) -> np.ndarray:
    xy = rng.uniform(0, [WIDTH - 40, HEIGHT - 40], size=(k, 2))
    wh = rng.uniform(8, 120, size=(k, 2))
    return np.concatenate([xy, np.minimum(xy + wh, [WIDTH, HEIGHT])], 1).astype(np.float32)


def _regions(vid: str, rng: np.random.Generator) -> pa.Table:
    schema = with_vector_dims(TABLES["regions"], features=REGION_DIM)
    ranks = rng.permutation(FRAMES)  # rows out of order: exports sort by sample_rank
    sizes = [0 if (vid == "v0" and r == 2) else int(rng.integers(3, 15)) for r in ranks]
    offsets = np.concatenate([[0], np.cumsum(sizes)])
    total = int(offsets[-1])
    classes = rng.integers(1, len(CLASSES), total).astype(np.int32)
    boxes = _boxes(total, rng)
    scores = rng.uniform(0.2, 1.0, total).astype(np.float32)
    order = np.concatenate([np.argsort(-scores[a:b]) + a for a, b in
                            zip(offsets[:-1], offsets[1:], strict=True)]).astype(np.int64)
    classes, boxes, scores = classes[order], boxes[order], scores[order]
    feats = rng.normal(size=(total, REGION_DIM)).astype(np.float16)
    geometry = np.zeros((total, 6), np.float32)

    def per_frame(values: pa.Array) -> pa.ListArray:
        return pa.ListArray.from_arrays(pa.array(offsets.astype(np.int32)), values)

    attributes = [None] * 3  # a detector without attributes (videos v4..)
    if int(vid[1:]) < 4:  # VinVL-like: 0-3 attributes per box, by descending score
        counts = rng.integers(0, 4, total)
        ids = [rng.choice(np.arange(1, len(ATTRIBUTES)), k, replace=False) for k in counts]
        scores_ = [np.sort(rng.uniform(0.06, 0.9, k))[::-1].astype(np.float32) for k in counts]
        attributes = [
            per_frame(pa.array([a.astype(np.int16) for a in ids], pa.list_(pa.int16()))),
            per_frame(pa.array([[ATTRIBUTES[i] for i in a] for a in ids],
                               pa.list_(pa.string()))),
            per_frame(pa.array(scores_, pa.list_(pa.float32())))]
    attributes = [a if a is not None else pa.nulls(FRAMES, schema.field(name).type)
                  for a, name in zip(attributes, ("attr_ids", "attr_names", "attr_scores"),
                                     strict=True)]

    return pa.Table.from_arrays([
        pa.array([vid] * FRAMES), pa.array((ranks * 7).astype(np.int32)),
        pa.array((ranks * 0.5).astype(np.float32)), pa.array(ranks.astype(np.int16)),
        pa.array([WIDTH] * FRAMES, pa.int32()), pa.array([HEIGHT] * FRAMES, pa.int32()),
        per_frame(pa.FixedSizeListArray.from_arrays(pa.array(boxes.reshape(-1)), 4)),
        per_frame(pa.array(classes)), per_frame(pa.array([CLASSES[c] for c in classes])),
        per_frame(pa.array(scores)),
        per_frame(pa.FixedSizeListArray.from_arrays(pa.array(feats.reshape(-1)), REGION_DIM)),
        per_frame(pa.FixedSizeListArray.from_arrays(pa.array(geometry.reshape(-1)), 6)),
        *attributes,
    ], schema=schema)


def write_store(root: Path, seed: int = 0, target_file_bytes: int = 6000) -> Path:
    """The store under root/store (and its label map and two local 'videos' beside it)."""
    rng = np.random.default_rng(seed)
    store = Store(str(root / "store"))
    (root / "labels.txt").write_text("\n".join(CLASSES[1:]) + "\n")
    for name in ("v0.webm", "v1.mp4"):
        (root / name).write_bytes(b"not really a video")
    for pid, start in enumerate(range(0, len(VIDEOS), PARTITION)):
        vids = VIDEOS[start:start + PARTITION]
        paths = {"v0": str(root / "v0.webm"), "v1": str(root / "v1.mp4")}
        tables = {
            "videos": pa.Table.from_pylist([{"video_id": v, "path": paths.get(v, f"s3://b/{v}.mp4")}
                                            for v in vids], schema=TABLES["videos"]),
            "texts": pa.Table.from_pylist([r for v in vids for r in _texts(v, rng)],
                                          schema=TABLES["texts"]),
            "s3d": pa.concat_tables([_s3d(v, rng) for v in vids if v != "v5"]),
            "regions": pa.concat_tables([_regions(v, rng) for v in vids if v != "v6"]),
        }
        store.write_partition(pid, len(vids), tables, target_file_bytes)
    lemmas = [f"thing{i}" for i in range(25)]
    ranks = rng.permutation(len(lemmas))
    entities = pa.Table.from_pylist([{"video_id": "", "rank": int(r), "lemma": lemmas[r],
                                      "count": 100 - int(r)} for r in ranks],
                                    schema=TABLES["entities"])
    store.write_unit("agg-entities", 0, {"entities": entities}, target_file_bytes)
    recipe = {"stages": [
        {"name": "detect", "kind": "detect", "options": {"label_map": str(root / "labels.txt")}},
        {"name": "trajectories", "kind": "trajectories", "options": dict(RULES)}]}
    store.write_atomic(store.path("_recipe.json"), json.dumps(recipe).encode())
    return root / "store"


def read_table(store: Path, table: str) -> pa.Table:
    """The whole table (tests only: the stores here are tiny)."""
    import pyarrow.dataset as ds

    return ds.dataset(str(store / table), format="parquet").to_table()


def by_video(table: pa.Table) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for row in table.to_pylist():
        out.setdefault(row["video_id"], []).append(row)
    return out
