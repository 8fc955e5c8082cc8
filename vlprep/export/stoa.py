"""`vlprep export stoa`: a store as whongzhong/STOA-VLP's loaders read their object inputs.

Layout under OUT (the loaders' ``object_path`` and ``labelmap_path``)::

    object_attr_<K>_<i>_<n>.pth      the per-video object cache in n shards (pre-training
                                     loads i = 0..n-1, n = 300): {video_id: {"objects":
                                     float[T,K,4], "obj_cls": int64[T,K], "attr_sentence":
                                     str, "conf_set": {class id: summed confidence}}}
    object_attr_<split>_<K>.pth      with --split NAME instead: one file (fine-tuning loaders)
    tsv_files/<video_id>.json        per video, per sampled frame, every detection as VinVL
                                     writes it ({"objects": [{"rect", "class", "conf",
                                     "attributes", "attr_scores"}]}): what the fine-tuning
                                     loaders build their cache from when it is missing
    labelmap.json                    the label map the class ids index (VG-SGG-dicts keys),
                                     every name unique (``N/A_26``: see labels.py)
    frozen_train_labels.json         the captions of the exported videos, [{"video_id",
                                     "caption"}] (the pre-training loader's ``json_path``)
    webvidpos/postagging_ids_<K>_new.pth
                                     one entry per caption of frozen_train_labels.json, in its
                                     order: [video_id, [tag per CLIP token]] with tags "NOUN",
                                     "VERB" or "X", one per BPE token of the caption without
                                     start/end of text (the loader adds "PAD" for those and
                                     reads ``entry[1]``), from ``texts.clip_pos``
    videos/<video_id>.mp4            with --link-videos: links to the source videos

The cache is made from `regions` with the store's own trajectory rules (the recipe's
`trajectories` options, STOA-VLP's ``object_loader_confident`` by default, ``--selection``
to choose; :func:`select_objects`), applied to exactly the boxes, names and scores of the
frame lists, so it equals what STOA-VLP's loader builds from ``tsv_files``: per sampled
frame the kept objects, largest first, in ``frame_size`` (224) pixel coordinates, padded
with -1 boxes and class 0; ``conf_set`` in order of first appearance (the loader uses its
first 2K). ``attr_sentence`` is STOA-VLP's ``get_attr_sent`` of the kept objects: up to 10
classes by its ordering rules, each with up to two of its boxes' attributes (VinVL's, from
`regions`; at most one colour), e.g. ``"white furry dog, green tree"``; a store from a
detector without attributes gives the class names alone. The
frame lists carry each box's attributes as VinVL's TSV does. Everything is
saved with torch.save of plain tensors, dicts, lists, floats and strings only: ``torch.load(...,
weights_only=True)`` reads it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from vlprep.export import ExportError, ExportReport
from vlprep.export.labels import LabelMap
from vlprep.export.sink import OutDir, video_file
from vlprep.export.source import StoreSource
from vlprep.export.videos import link_videos
from vlprep.stages.trajectories import TrajectoriesOptions, select_objects

REGION_COLUMNS = ["sample_rank", "width", "height", "boxes", "classes", "class_names", "scores"]
ATTRIBUTE_COLUMNS = ["attr_names", "attr_scores"]  # VinVL's attributes; stores since VinVL
# STOA-VLP's attribute classes (``get_attr_dict``): a sentence names at most one attribute of
# a class for an object; colour is its only class
COLOURS = frozenset({
    "white", "black", "blue", "green", "red", "brown", "yellow", "gray", "orange", "dark",
    "pink", "tan", "purple", "blond", "light blue", "bright", "light brown", "dark brown",
    "black and white", "dark blue", "golden", "light colored", "dark colored", "lime green",
    "cream colored", "rainbow colored", "golden brown", "browned"})
ATTRIBUTE_MIN_SCORE = 0.2  # object_loader_confident keeps an object's first two above it
TEXT_COLUMNS = ["segment", "source", "text", "clip_pos"]
POS_TAGS = {1: "NOUN", 2: "VERB"}  # texts.clip_pos codes; anything else is "X" (UD: other)


@dataclass
class StoaOptions:
    shards: int = 300
    split: str | None = None
    frame_json: bool = True
    link_videos: bool = False
    selection: str | None = None  # the object rule; None: the store's (recipe) rule


@dataclass
class Frame:
    boxes: np.ndarray  # float32 K x 4, in frame pixels
    classes: np.ndarray  # int64 K
    names: list[str]
    scores: np.ndarray  # float32 K
    width: int
    height: int
    attrs: list[list[tuple[str, float]]]  # per box: (attribute, score), best first; or []


def frames_of(rows: pa.Table) -> list[Frame]:
    """One video's `regions` rows (sorted by sample_rank) as per-frame arrays."""
    def flat(column: str) -> tuple[pa.Array, np.ndarray]:
        col = rows.column(column).combine_chunks()
        offsets = col.offsets.to_numpy()
        return col.flatten(), offsets - offsets[0]

    boxes, offs = flat("boxes")
    box_values = boxes.flatten().to_numpy(zero_copy_only=False).reshape(-1, 4)
    classes = flat("classes")[0].to_numpy(zero_copy_only=False).astype(np.int64)
    names = flat("class_names")[0].to_pylist()
    scores = flat("scores")[0].to_numpy(zero_copy_only=False).astype(np.float32)
    widths, heights = rows.column("width").to_pylist(), rows.column("height").to_pylist()
    attrs = box_attributes(rows, len(names))
    return [Frame(box_values[a:b], classes[a:b], names[a:b], scores[a:b], w, h, attrs[a:b])
            for a, b, w, h in zip(offs[:-1], offs[1:], widths, heights, strict=True)]


def box_attributes(rows: pa.Table, boxes: int) -> list[list[tuple[str, float]]]:
    """Each box's (attribute, score) list, flat over the frames; empty lists where the
    detector has no attribute head (null columns, or a store older than the columns)."""
    if not set(ATTRIBUTE_COLUMNS) <= set(rows.column_names):
        return [[] for _ in range(boxes)]
    out: list[list[tuple[str, float]]] = []
    for names, scores in zip(rows.column("attr_names").to_pylist(),
                             rows.column("attr_scores").to_pylist(), strict=True):
        if names is None:  # a frame from a detector without attributes
            continue
        out += [list(zip(n, s, strict=True)) for n, s in zip(names, scores, strict=True)]
    return out if len(out) == boxes else [[] for _ in range(boxes)]


def attr_sentence(kept: list[tuple[str, float, float, list[tuple[str, float]]]],
                  limit: int = 10) -> str:
    """STOA-VLP's attribute sentence (``get_attr_sent``) from the kept objects (class name,
    confidence, box area, attributes): classes by occurrences, then confidence (tenths), then
    size, cut to 3x, 2x and 1x `limit`; each class with its two attributes seen most often
    (then most confidently) on its boxes, never two colours: "white furry dog, tree"."""
    stats: dict[str, list[float]] = {}
    for name, conf, size, _ in kept:
        s = stats.setdefault(name, [0, 0, 0])
        s[0], s[1], s[2] = s[0] + 1, max(s[1], round(conf * 10)), max(s[2], size)
    items = [(name, *s) for name, s in stats.items()]
    if 3 * limit < len(items):
        items.sort(key=lambda x: (x[1], x[2], x[3]), reverse=True)
        items = items[: 3 * limit]
    if 2 * limit < len(items):
        items.sort(key=lambda x: (x[2], x[3], x[1]), reverse=True)
        items = items[: 2 * limit]
    items.sort(key=lambda x: (x[3], x[2], x[1]), reverse=True)
    chosen = [name for name, *_ in items[:limit]]
    seen: dict[str, dict[str, tuple[int, float]]] = {name: {} for name in chosen}
    for name, _, _, attrs in kept:
        if name in seen:
            for attr, score in attrs:
                count, best = seen[name].get(attr, (0, 0.0))
                seen[name][attr] = (count + 1, max(best, score))
    phrases = []
    for name in chosen:
        ranked = sorted(seen[name].items(), key=lambda a: a[1], reverse=True)
        words: list[str] = []
        for attr, _ in ranked:
            if len(words) == 2:
                break
            if attr in COLOURS and any(w in COLOURS for w in words):
                continue
            words.append(attr)
        phrases.append(" ".join([*words, name]))
    return ", ".join(phrases)


def loader_attributes(attrs: list[tuple[str, float]]) -> list[tuple[str, float]]:
    """The attributes STOA-VLP's loader keeps for an object: its first two above 0.2."""
    return [(a, s) for a, s in attrs if s > ATTRIBUTE_MIN_SCORE][:2]


def video_cache(frames: list[Frame], opts: TrajectoriesOptions) -> dict[str, Any]:
    """One video's cache entry (numpy arrays; tensors are made when a shard is saved)."""
    k = opts.max_objects
    objects = np.full((len(frames), k, 4), -1, np.float32)
    obj_cls = np.zeros((len(frames), k), np.int64)
    conf_set: dict[int, float] = {}
    kept: list[tuple[str, float, float, list[tuple[str, float]]]] = []
    for t, fr in enumerate(frames):
        boxes = scaled_boxes(fr, opts.frame_size)  # the frame list's rects, to the bit
        for slot, i in enumerate(select_objects(boxes, fr.classes, fr.scores, opts)):
            box = boxes[i].astype(np.float64)
            objects[t, slot], obj_cls[t, slot] = boxes[i], fr.classes[i]
            cls, score = int(fr.classes[i]), float(fr.scores[i])
            conf_set[cls] = conf_set.get(cls, 0.0) + score
            kept.append((fr.names[i], score, float((box[2] - box[0]) * (box[3] - box[1])),
                         loader_attributes(fr.attrs[i])))
    return {"objects": objects, "obj_cls": obj_cls, "attr_sentence": attr_sentence(kept),
            "conf_set": conf_set}


def scaled_boxes(fr: Frame, frame_size: int) -> np.ndarray:
    """The frame's boxes in `frame_size`-pixel coordinates (float32, as written out)."""
    scale = np.array([frame_size / fr.width, frame_size / fr.height] * 2, np.float32)
    return fr.boxes * scale


def frame_json(frames: list[Frame], frame_size: int) -> list[dict[str, Any]]:
    """Every detection per frame, most confident first, as VinVL's TSV rows hold them (with
    its attributes, best first); boxes with no area are left out (STOA-VLP's IoU asserts
    x1 < x2)."""
    out = []
    for fr in frames:
        scaled = scaled_boxes(fr, frame_size)
        objects = []
        for i in np.argsort(-fr.scores, kind="stable"):
            box = scaled[i].tolist()
            if box[2] > box[0] and box[3] > box[1]:
                objects.append({"rect": box, "class": fr.names[i], "conf": float(fr.scores[i]),
                                "attributes": [a for a, _ in fr.attrs[i]],
                                "attr_scores": [float(v) for _, v in fr.attrs[i]]})
        out.append({"objects": objects})
    return out


def trajectory_options(source: StoreSource) -> TrajectoriesOptions:
    """The store's trajectory rules (its recipe), so the cache agrees with `trajectories`."""
    stage = source.recipe_stage("trajectories") or {}
    known = set(TrajectoriesOptions.model_fields)
    options = {k: v for k, v in stage.get("options", {}).items() if k in known}
    return TrajectoriesOptions(**options)


def caption_tags(texts: pa.Table | None) -> tuple[list[tuple[str, list[str]]], int]:
    """A video's captions with their POS tags per CLIP token (specials dropped), and how
    many captions had no ``clip_pos`` (the texts stage ran without spaCy or CLIP's
    tokenizer) and are left out."""
    if texts is None:
        return [], 0
    out, missing = [], 0
    for row in texts.sort_by("segment").to_pylist():
        if row["source"] != "caption":
            continue
        if row.get("clip_pos") is None:
            missing += 1
            continue
        out.append((row["text"], [POS_TAGS.get(c, "X") for c in row["clip_pos"][1:-1]]))
    return out, missing


def _save_shard(out: OutDir, rel: str, entries: dict[str, dict[str, Any]]) -> None:
    import torch

    tensors = {vid: {"objects": torch.from_numpy(e["objects"]),
                     "obj_cls": torch.from_numpy(e["obj_cls"]),
                     "attr_sentence": e["attr_sentence"], "conf_set": e["conf_set"]}
               for vid, e in entries.items()}
    _save_torch(out, rel, tensors)


def _save_torch(out: OutDir, rel: str, value: Any) -> None:
    import torch

    with out.open(rel) as f:
        torch.save(value, f)


def _has_pos(source: StoreSource) -> bool:
    """Whether the store's `texts` carry clip_pos at all (a column of nulls does not)."""
    if "clip_pos" not in source.columns("texts"):
        return False
    return any(batch.column("clip_pos").null_count < len(batch)
               for batch in source.batches("texts", ["clip_pos"]))


def export_stoa(store: str, out_dir: str, opts: StoaOptions | None = None) -> ExportReport:
    opts = opts or StoaOptions()
    if opts.shards < 1:
        raise ExportError("need shards >= 1")
    if opts.split is not None and ("/" in opts.split or not opts.split):
        raise ExportError(f"--split {opts.split!r}: expected a name such as train or 1ktest")
    source = StoreSource(store)
    source.require("regions", "detect")
    rules = trajectory_options(source)
    if opts.selection is not None:
        if opts.selection not in ("stoa", "same_class_iou"):
            raise ExportError(f"--selection {opts.selection!r}: expected stoa or "
                              "same_class_iou")
        rules = rules.model_copy(update={"selection": opts.selection})
    out = OutDir(out_dir)
    labels = LabelMap(source)
    k = rules.max_objects
    per_shard = max(1, math.ceil(source.count_videos("regions") / opts.shards))
    shard: dict[str, dict[str, Any]] = {}
    written = 0
    counts = {"videos": 0, "frames": 0, "captions": 0}
    with_texts = ("texts", TEXT_COLUMNS) if _has_pos(source) else None
    captions: list[dict[str, str]] = []
    pos: list[list[Any]] = []
    no_pos = 0
    columns = REGION_COLUMNS + [c for c in ATTRIBUTE_COLUMNS if c in source.columns("regions")]
    for video_id, rows, texts in source.videos("regions", columns, sort_by="sample_rank",
                                               with_=with_texts):
        frames = frames_of(rows)
        for fr in frames:
            fr.names = labels.see(fr.classes.tolist(), fr.names)
        shard[video_id] = video_cache(frames, rules)
        tagged, missing = caption_tags(texts)
        no_pos += missing
        for text, tags in tagged:
            captions.append({"video_id": video_id, "caption": text})
            pos.append([video_id, tags])
        if opts.frame_json:
            out.write_bytes(f"tsv_files/{video_file(video_id, '.json')}",
                            json.dumps(frame_json(frames, rules.frame_size)).encode())
        counts["videos"] += 1
        counts["frames"] += len(frames)
        if opts.split is None and len(shard) == per_shard and written < opts.shards - 1:
            _save_shard(out, f"object_attr_{k}_{written}_{opts.shards}.pth", shard)
            shard, written = {}, written + 1
    if opts.split is not None:
        _save_shard(out, f"object_attr_{opts.split}_{k}.pth", shard)
    else:
        for i in range(written, opts.shards):  # the rest, then empty shards: the loader
            _save_shard(out, f"object_attr_{k}_{i}_{opts.shards}.pth", shard)  # opens all n
            shard = {}
    out.write_bytes("labelmap.json", json.dumps(labels.vg_sgg_dicts()).encode())
    report = ExportReport("stoa", str(out.root), counts)
    counts["captions"] = len(captions)
    if with_texts is None:
        report.notes.append("no POS file: the store's `texts` have no clip_pos (run the texts "
                            "stage with spacy_model and clip_tokenizer); STOA-VLP's "
                            "pre-training loader needs webvidpos/postagging_ids_"
                            f"{k}_new.pth")
    else:
        out.write_bytes("frozen_train_labels.json", json.dumps(captions).encode())
        _save_torch(out, f"webvidpos/postagging_ids_{k}_new.pth", pos)
        if no_pos:
            report.notes.append(f"{no_pos} captions have no clip_pos: left out of "
                                "frozen_train_labels.json and the POS file")
    if opts.link_videos:
        counts["video_links"], skipped = link_videos(source, out)
        if skipped:
            report.notes.append(f"{skipped} videos are not local files: not linked")
    out.finish({"format": "stoa", "store": store, "counts": counts, "notes": report.notes,
                "options": vars(opts), "objects_per_frame": k})
    return report
