"""Converters from public dataset annotations (WebVid, HowTo100M, MSR-VTT) to a manifest.

Each writes the contract's manifest columns as JSONL (Parquet when `out` ends in `.parquet`
or `.pq`), atomically, with absolute video paths so the manifest can move, and returns a
`ConvertReport`. Input problems raise `ConvertError`, a one-line `ValueError`.
"""

from __future__ import annotations

import json
import os
import re
import string
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vlprep.errors import ConvertError  # noqa: F401 - re-exported
from vlprep.jobs.manifest import first_line, has_scheme, open_csv_as_strings
from vlprep.schemas.manifest import MANIFEST

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class ConvertReport:
    """How many manifest rows were written, and how many input videos were left out."""

    rows: int
    skipped: int = 0


class _ManifestWriter:
    """Writes rows to a temporary file renamed into place on success: never a partial manifest."""

    def __init__(self, out: PathLike, chunk_rows: int = 8192) -> None:
        self.out = os.path.abspath(os.fspath(out))
        self.tmp = f"{self.out}.tmp-{os.getpid()}"
        self.parquet = self.out.lower().endswith((".parquet", ".pq"))
        self.chunk_rows = chunk_rows
        self.pending: list[dict[str, Any]] = []
        self.rows = 0

    def __enter__(self) -> _ManifestWriter:
        os.makedirs(os.path.dirname(self.out), exist_ok=True)
        if self.parquet:
            self.sink: Any = pq.ParquetWriter(self.tmp, MANIFEST)
        else:
            self.sink = open(self.tmp, "w", encoding="utf-8")  # closed in __exit__
        return self

    def write(self, row: dict[str, Any]) -> None:
        self.rows += 1
        if not self.parquet:
            kept = {k: v for k, v in row.items() if v is not None}
            self.sink.write(json.dumps(kept, ensure_ascii=False) + "\n")
            return
        self.pending.append(row)
        if len(self.pending) >= self.chunk_rows:
            self._flush()

    def _flush(self) -> None:
        if self.pending:
            self.sink.write_batch(pa.RecordBatch.from_pylist(self.pending, schema=MANIFEST))
            self.pending = []

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        try:
            if exc_type is None and self.parquet:
                self._flush()
        finally:
            self.sink.close()
            if exc_type is None:
                os.replace(self.tmp, self.out)
            elif os.path.exists(self.tmp):
                os.unlink(self.tmp)


def _video_path(videos_dir: PathLike, relative: str) -> str:
    """An absolute local path, or a URI when the videos live in an object store."""
    base = os.fspath(videos_dir)
    if has_scheme(base):
        return base.rstrip("/") + "/" + relative.lstrip("/")
    return os.path.abspath(os.path.join(base, relative))


def _load_json(path: PathLike, kind: str) -> Any:
    """The whole annotation file: these public formats are single JSON documents."""
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError:
        raise ConvertError(f"{kind} {os.fspath(path)}: no such file") from None
    except json.JSONDecodeError as exc:
        raise ConvertError(
            f"{kind} {os.fspath(path)}: invalid JSON ({exc.msg}, line {exc.lineno})") from None


def _pattern_fields(pattern: str) -> list[str]:
    """Column names a `str.format` pattern refers to (`{page_dir}/{videoid}.mp4`)."""
    try:
        fields = [f for _, f, _, _ in string.Formatter().parse(pattern) if f is not None]
    except ValueError as exc:
        raise ConvertError(f"webvid: bad --pattern {pattern!r}: {exc}") from None
    if any(not f for f in fields):
        raise ConvertError(f"webvid: --pattern {pattern!r} needs named fields like {{videoid}}")
    return [re.split(r"[.\[]", f)[0] for f in fields]


def webvid(csv_path: PathLike, videos_dir: PathLike | None, out: PathLike,
           pattern: str = "{page_dir}/{videoid}.mp4", use_urls: bool = False) -> ConvertReport:
    """WebVid CSV (`videoid,contentUrl,duration,page_dir,name`) to a manifest.

    `path` is `videos_dir/pattern` (any CSV column may appear in the pattern), or
    `contentUrl` with `use_urls`. Rows without an id or path, and repeated ids, are skipped.
    """
    src = os.path.abspath(os.fspath(csv_path))
    fields = [] if use_urls else _pattern_fields(pattern)
    if not use_urls and videos_dir is None:
        raise ConvertError("webvid: a videos folder is needed unless use_urls is set")
    wanted = list(dict.fromkeys(["videoid", "name", "contentUrl", *fields]))
    if not os.path.isfile(src):
        raise ConvertError(f"webvid {src}: no such file")
    try:
        names, batches = open_csv_as_strings(
            lambda: pafs.LocalFileSystem().open_input_stream(src), wanted)
    except pa.ArrowInvalid as exc:
        raise ConvertError(f"webvid {src}: cannot parse CSV: {first_line(exc)}") from None
    for column in ["videoid", "name", "contentUrl" if use_urls else None, *fields]:
        if column is not None and column not in names:
            raise ConvertError(
                f"webvid {src}: missing column {column!r} (found: {', '.join(names)})")
    seen: set[str] = set()
    skipped = 0
    with _ManifestWriter(out) as writer:
        try:
            for batch in batches:
                for row in batch.to_pylist():
                    video_id = (row.get("videoid") or "").strip()
                    if use_urls:
                        path = (row.get("contentUrl") or "").strip()
                    else:
                        values = {k: v or "" for k, v in row.items()}
                        path = _video_path(videos_dir or "", pattern.format(**values))
                    if not video_id or not path or video_id in seen:
                        skipped += 1
                        continue
                    seen.add(video_id)
                    writer.write({"video_id": video_id, "path": path,
                                  "caption": row.get("name") or None})
        except pa.ArrowInvalid as exc:
            raise ConvertError(f"webvid {src}: cannot parse CSV: {first_line(exc)}") from None
    return ConvertReport(writer.rows, skipped)


def _index_videos(videos_dir: PathLike, extensions: Iterable[str]) -> dict[str, str]:
    """Video id (file stem) -> path, from one walk of the folder; earlier extensions win."""
    root = os.fspath(videos_dir)
    if has_scheme(root) or not os.path.isdir(root):
        raise ConvertError(f"videos folder {root}: not a local directory")
    rank = {e.lower() if e.startswith(".") else "." + e.lower(): i
            for i, e in enumerate(extensions)}
    best: dict[str, tuple[int, str]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            stem, ext = os.path.splitext(name)
            r = rank.get(ext.lower())
            if r is not None and (stem not in best or r < best[stem][0]):
                best[stem] = (r, os.path.abspath(os.path.join(dirpath, name)))
    return {stem: path for stem, (_, path) in best.items()}


def _howto_segments(video_id: str, entry: Any, src: str) -> list[dict[str, Any]]:
    where = f"howto100m {src}: video {video_id!r}"
    if not isinstance(entry, dict) or not all(k in entry for k in ("start", "end", "text")):
        raise ConvertError(f"{where}: expected an object with start, end and text lists")
    starts, ends, texts = entry["start"], entry["end"], entry["text"]
    if not (isinstance(starts, list) and isinstance(ends, list) and isinstance(texts, list)):
        raise ConvertError(f"{where}: start, end and text must be lists")
    if not len(starts) == len(ends) == len(texts):
        raise ConvertError(f"{where}: start, end and text have different lengths "
                           f"({len(starts)}, {len(ends)}, {len(texts)})")
    segments = []
    for j, (start, end, text) in enumerate(zip(starts, ends, texts, strict=True)):
        ok = all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in (start, end))
        if not ok or start > end or not isinstance(text, str):
            raise ConvertError(f"{where}: segment {j} needs numeric start <= end and a text")
        segments.append({"start": float(start), "end": float(end), "text": text})
    return segments


def howto100m(raw_caption_json: PathLike, videos_dir: PathLike, out: PathLike,
              extensions: Iterable[str] = (".mp4", ".webm", ".mkv")) -> ConvertReport:
    """HowTo100M `raw_caption.json` (`{id: {start, end, text}}`) to a manifest with segments.

    Each video's file is looked up by stem in `videos_dir` (searched once, recursively);
    videos with captions but no file are skipped and counted.
    """
    src = os.path.abspath(os.fspath(raw_caption_json))
    captions = _load_json(src, "howto100m")
    if not isinstance(captions, dict):
        raise ConvertError(f"howto100m {src}: expected an object keyed by video id")
    files = _index_videos(videos_dir, extensions)
    skipped = 0
    with _ManifestWriter(out) as writer:
        for video_id, entry in captions.items():
            path = files.get(video_id)
            if path is None:
                skipped += 1
                continue
            writer.write({"video_id": video_id, "path": path,
                          "segments": _howto_segments(video_id, entry, src)})
    return ConvertReport(writer.rows, skipped)


def msrvtt(json_path: PathLike, videos_dir: PathLike, out: PathLike,
           ext: str = ".mp4") -> ConvertReport:
    """MSR-VTT annotation JSON (`videos` + `sentences`) to one manifest row per video.

    `caption` is the video's first sentence in file order, `captions` all of them; the path
    is `videos_dir/<video_id><ext>`. Repeated video ids are skipped and counted.
    """
    src = os.path.abspath(os.fspath(json_path))
    data = _load_json(src, "msrvtt")
    if not isinstance(data, dict) or not isinstance(data.get("videos"), list):
        raise ConvertError(f"msrvtt {src}: expected an object with a 'videos' list")
    sentences = data.get("sentences", [])
    if not isinstance(sentences, list):
        raise ConvertError(f"msrvtt {src}: 'sentences' must be a list")
    by_video: dict[str, list[str]] = {}
    for j, sentence in enumerate(sentences):
        if not isinstance(sentence, dict) or not isinstance(sentence.get("caption"), str) \
                or sentence.get("video_id") is None:
            raise ConvertError(f"msrvtt {src}: sentences[{j}] needs video_id and caption")
        by_video.setdefault(str(sentence["video_id"]), []).append(sentence["caption"])
    suffix = ext if ext.startswith(".") or not ext else "." + ext
    seen: set[str] = set()
    skipped = 0
    with _ManifestWriter(out) as writer:
        for j, video in enumerate(data["videos"]):
            if not isinstance(video, dict) or video.get("video_id") in (None, ""):
                raise ConvertError(f"msrvtt {src}: videos[{j}] has no video_id")
            video_id = str(video["video_id"])
            if video_id in seen:
                skipped += 1
                continue
            seen.add(video_id)
            caps = by_video.get(video_id) or None
            writer.write({"video_id": video_id, "path": _video_path(videos_dir, video_id + suffix),
                          "caption": caps[0] if caps else None, "captions": caps})
    return ConvertReport(writer.rows, skipped)

