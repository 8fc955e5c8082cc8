"""`vlprep export mmpt`: a store as fairseq examples/MMPT (VideoCLIP) reads its HowTo100M data.

Layout under OUT (MMPT's names; its configs point at these paths)::

    feat_s3d/<video_id>.npy                         (n_sec, 512) per video: `vfeat_dir` of
                                                    the per-video VideoProcessor
    feat_s3d_shard/<split>_<i>_data.npy             ShardedTensor data: the shard's videos'
    feat_s3d_shard/<split>_<i>_starts.npy           rows concatenated; int64 offsets, n+1
    feat_s3d_shard/<split>_meta.pkl                 {shard i: [video ids]} (ShardedHow2Meta)
    feat_s3d_shard/raw_caption_dedup.<bert>.<split>_<i>.caps_ids_{data,starts}.npy
    feat_s3d_shard/raw_caption_dedup.<bert>.<split>_<i>.startends_{data,starts}.npy
    s3d_<split>.lst                                 the split's video ids (train_path/val_path)
    raw_caption.json                                {video_id: {start: [], end: [], text: []}}

Splits are ``train`` and ``val`` (``--val-fraction``, a stable hash of the id). A shard holds
4,096 videos (``shard_feature.py``); its text shards index the same videos in the same order,
as ``ShardedTextProcessor`` expects: per video, its transcript lines with their times, or, for
a video with none, its captions spanning the whole video. Only videos with S3D features and at
least one such line with ``bert_ids`` go into the shards (every video gets its ``.npy``).
``.caps_ids`` rows are ``bert_ids`` cut to 32 and padded with -1 (int32), ``.startends``
float32 (start, end), as ``pretokenization.py`` saves them.
"""

from __future__ import annotations

import json
import pickle
from contextlib import nullcontext
from dataclasses import dataclass
from typing import IO

import numpy as np
import pyarrow as pa

from vlprep.columns import s3d_sharded
from vlprep.export import ExportError, ExportReport
from vlprep.export.sink import NpyWriter, OutDir, in_val_split, video_file
from vlprep.export.source import StoreSource

SPLITS = ("train", "val")
TEXT_COLUMNS = ["segment", "source", "text", "start", "end", "bert_ids"]


@dataclass
class MmptOptions:
    shard_size: int = 4096
    val_fraction: float = 0.0
    bert_name: str = "bert-base-uncased"
    max_cap_len: int = 32
    dtype: str = "float16"  # MMPT's extractor saves half precision (--half_precision 1)
    per_video: bool = True
    text: bool = True


@dataclass
class Lines:
    """One video's text lines as MMPT aligns them with its features."""

    start: list[float]
    end: list[float]
    text: list[str]
    ids: list[list[int]]


def video_lines(rows: pa.Table | None, seconds: float) -> Lines | None:
    """Transcript lines with times, else captions over [0, seconds]; only lines that have
    bert_ids. None when the video has no such line."""
    if rows is None:
        return None
    items = rows.sort_by("segment").to_pylist()
    timed = [r for r in items if r["source"] == "transcript"
             and r["start"] is not None and r["end"] is not None]
    chosen = ([(r["start"], r["end"], r) for r in timed] if timed else
              [(0.0, seconds, r) for r in items if r["source"] == "caption"])
    chosen = [(s, e, r) for s, e, r in chosen if r["bert_ids"] is not None]
    if not chosen:
        return None
    return Lines([float(s) for s, _, _ in chosen], [float(e) for _, e, _ in chosen],
                 [r["text"] for _, _, r in chosen], [list(r["bert_ids"]) for _, _, r in chosen])


class SplitShards:
    """The shards of one split, written a video at a time; a full shard is closed at once."""

    def __init__(self, out: OutDir, split: str, opts: MmptOptions, dim: int):
        self.out, self.split, self.opts, self.dim = out, split, opts, dim
        self.text_prefix = f"feat_s3d_shard/raw_caption_dedup.{opts.bert_name}.{split}"
        self.meta: dict[int, list[str]] = {}
        self.ids: list[str] = []
        self.writers: dict[str, NpyWriter] = {}
        self.starts: dict[str, list[int]] = {}

    def _open(self) -> None:
        i = len(self.meta)
        specs = {"video": (f"feat_s3d_shard/{self.split}_{i}", self.opts.dtype, (self.dim,))}
        if self.opts.text:
            specs["caps_ids"] = (f"{self.text_prefix}_{i}.caps_ids", np.int32,
                                 (self.opts.max_cap_len,))
            specs["startends"] = (f"{self.text_prefix}_{i}.startends", np.float32, (2,))
        self.paths = {k: path for k, (path, _, _) in specs.items()}
        self.writers = {k: NpyWriter(self.out, f"{path}_data.npy", dtype, shape)
                        for k, (path, dtype, shape) in specs.items()}
        self.starts = {k: [0] for k in specs}

    def add(self, video_id: str, feats: np.ndarray, lines: Lines | None) -> None:
        if not self.writers:
            self._open()
        blocks = {"video": feats}
        if self.opts.text:
            assert lines is not None
            caps = np.full((len(lines.ids), self.opts.max_cap_len), -1, np.int32)
            for row, ids in zip(caps, lines.ids, strict=True):
                ids = ids[: self.opts.max_cap_len]
                row[: len(ids)] = ids
            blocks["caps_ids"] = caps
            blocks["startends"] = np.stack([lines.start, lines.end], axis=1).astype(np.float32)
        for key, block in blocks.items():
            self.writers[key].append(block)
            self.starts[key].append(self.starts[key][-1] + len(block))
        self.ids.append(video_id)
        if len(self.ids) == self.opts.shard_size:
            self._close_shard()

    def _close_shard(self) -> None:
        for key, writer in self.writers.items():
            writer.close()
            self.out.save_npy(f"{self.paths[key]}_starts.npy",
                              np.asarray(self.starts[key], np.int64))
        self.meta[len(self.meta)] = self.ids
        self.ids, self.writers = [], {}

    def close(self) -> list[str]:
        """Close the last shard; write the split's meta and list. Returns the split's ids."""
        if self.ids:
            self._close_shard()
        # protocol 4: the Python 3.6/3.7 MMPT environments read it; plain int/str/list only
        self.out.write_bytes(f"feat_s3d_shard/{self.split}_meta.pkl",
                             pickle.dumps(self.meta, protocol=4))
        ids = [v for shard in self.meta.values() for v in shard]
        self.out.write_bytes(f"s3d_{self.split}.lst", "".join(f"{v}\n" for v in ids).encode())
        return ids

    def abort(self) -> None:
        for writer in self.writers.values():
            writer.abort()


def _json_caption(lines: Lines) -> str:
    return json.dumps({"start": [round(x, 3) for x in lines.start],
                       "end": [round(x, 3) for x in lines.end], "text": lines.text})


def export_mmpt(store: str, out_dir: str, opts: MmptOptions | None = None) -> ExportReport:
    opts = opts or MmptOptions()
    if opts.shard_size < 1 or not 0 <= opts.val_fraction < 1 or opts.max_cap_len < 1:
        raise ExportError("need shard_size >= 1, 0 <= val_fraction < 1, max_cap_len >= 1")
    source = StoreSource(store)
    source.require("s3d", "s3d")
    if opts.text:
        source.require("texts", "texts")
        if "bert_ids" not in source.columns("texts"):
            raise ExportError(f"store {store}: `texts` has no bert_ids (set the texts stage's "
                              "bert_tokenizer), or export features only with --no-text")
    out = OutDir(out_dir)
    counts = dict.fromkeys(["videos", "per_video_files", "no_seconds", "without_text", *SPLITS],
                           0)
    with out.open("raw_caption.json", "w") if opts.text else nullcontext() as captions:
        shards = _write_videos(source, out, opts, captions, counts)
    for split in SPLITS:
        (shards.get(split) or SplitShards(out, split, opts, 0)).close()
    if opts.text and counts["videos"] and not counts["train"] + counts["val"]:
        raise ExportError(f"store {store}: no video has both S3D features and a text line with "
                          "bert_ids; export features only with --no-text")
    report = ExportReport("mmpt", str(out.root), counts)
    if counts["no_seconds"]:
        report.notes.append(f"{counts['no_seconds']} videos have no S3D window: not in the shards")
    if counts["without_text"]:
        report.notes.append(f"{counts['without_text']} videos have no text line with bert_ids: "
                            "they have a .npy but are not in the shards or lists")
    out.finish({"format": "mmpt", "store": store, "counts": counts, "notes": report.notes,
                "options": vars(opts)})
    return report


def _write_videos(source: StoreSource, out: OutDir, opts: MmptOptions, captions: IO[str] | None,
                  counts: dict[str, int]) -> dict[str, SplitShards]:
    """Every s3d video: its .npy, and its shard rows and caption entry when it has text."""
    shards: dict[str, SplitShards] = {}
    if captions is not None:
        captions.write("{")
    try:
        for video_id, rows, texts in source.videos(
                "s3d", ["features", "window_end"],
                with_=("texts", TEXT_COLUMNS) if opts.text else None, single_row=True):
            data, starts = s3d_sharded(rows)
            feats = data[starts[0]:starts[1]]
            counts["videos"] += 1
            if opts.per_video:
                out.save_npy(f"feat_s3d/{video_file(video_id, '.npy')}", feats.astype(opts.dtype))
                counts["per_video_files"] += 1
            if not len(feats):  # MMPT's aligners index the features: at least one second
                counts["no_seconds"] += 1
                continue
            lines = None
            if opts.text:
                ends = rows.column("window_end")[0].as_py()
                lines = video_lines(texts, float(ends[-1]) if ends else 0.0)
                if lines is None:
                    counts["without_text"] += 1
                    continue
            split = "val" if in_val_split(video_id, opts.val_fraction) else "train"
            if split not in shards:
                shards[split] = SplitShards(out, split, opts, feats.shape[1])
            shards[split].add(video_id, feats, lines)
            if captions is not None and lines is not None:
                sep = ", " if counts["train"] + counts["val"] else ""
                captions.write(f"{sep}{json.dumps(video_id)}: {_json_caption(lines)}")
            counts[split] += 1
    except BaseException:
        for split_shards in shards.values():
            split_shards.abort()
        raise
    if captions is not None:
        captions.write("}\n")
    return shards
