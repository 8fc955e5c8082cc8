"""Read the input manifest (CONTRACT.md "Manifest") as a stream of `MANIFEST` record batches.

Manifests can hold millions of rows and live on object stores, so they are read
incrementally (never whole) and validated row by row; every problem is reported as a
`ManifestError` whose message is one line naming the file, the row and what is wrong.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import posixpath
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import SplitResult, urlsplit, urlunsplit

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from vlprep.errors import ManifestError  # noqa: F401 - re-exported
from vlprep.jobs.idset import IdSet
from vlprep.schemas.manifest import MANIFEST, REQUIRED_COLUMNS
from vlprep.store.fs import open_filesystem

COLUMNS: tuple[str, ...] = tuple(MANIFEST.names)
_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl",
            ".parquet": "parquet", ".pq": "parquet"}
_COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".zst": "zstd"}


def has_scheme(path: str) -> bool:
    """True for `s3://...`, `file://...`, `http://...`: such paths are used as they are."""
    return bool(_URI.match(path))


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception message, shortened: Arrow errors can quote whole rows."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


@dataclass(frozen=True)
class _Source:
    """Where a manifest lives and how to read it; resolved once, before any row is read."""

    uri: str
    fs: pafs.FileSystem
    path: str
    fmt: str
    compression: str | None
    base: str  # directory (local) or URI prefix (remote) that relative video paths resolve to
    local: bool

    def fail(self, problem: str) -> ManifestError:
        return ManifestError(f"manifest {self.uri}: {problem}")


def _locate(uri: str) -> _Source:
    """Find the file and its format; a missing file fails here, before streaming starts."""
    try:
        fs, path = open_filesystem(uri)
        info = fs.get_file_info(path)
    except (OSError, ValueError, ImportError) as exc:
        raise ManifestError(f"manifest {uri}: cannot open: {first_line(exc)}") from exc
    if info.type == pafs.FileType.NotFound:
        raise ManifestError(f"manifest {uri}: no such file")
    if info.type == pafs.FileType.Directory:
        raise ManifestError(f"manifest {uri}: is a directory, not a manifest file")
    name = posixpath.basename(urlsplit(uri).path if has_scheme(uri) else path).lower()
    stem, ext = posixpath.splitext(name)
    compression = _COMPRESSIONS.get(ext)
    if compression:
        stem, ext = posixpath.splitext(stem)
    fmt = _FORMATS.get(ext)
    if fmt is None or (compression and fmt == "parquet"):
        raise ManifestError(
            f"manifest {uri}: unknown format '{name}' "
            "(expected .csv, .jsonl, .ndjson, .parquet or .pq; .csv/.jsonl may end in .gz)")
    local = isinstance(fs, pafs.LocalFileSystem)
    if local:
        base = os.path.dirname(path)
    else:
        parts = urlsplit(uri)
        base = _remote_base(parts)
    return _Source(uri, fs, path, fmt, compression, base, local)


def _resolve(path: str, src: _Source) -> str:
    """Relative video paths are relative to the manifest, so a dataset folder can move whole."""
    if has_scheme(path):
        return path
    if src.local:
        path = os.path.expanduser(path)
        return path if os.path.isabs(path) else os.path.abspath(os.path.join(src.base, path))
    if path.startswith("/"):
        return path
    parts = urlsplit(src.base)
    joined = posixpath.normpath(posixpath.join(parts.path or "/", path))
    return urlunsplit((parts.scheme, parts.netloc, joined, parts.query, ""))


# Object stores whose URI query holds filesystem options (endpoint_override, scheme, region):
# relative video paths inherit them, so videos are read from the manifest's endpoint.
_INHERIT_QUERY_SCHEMES = ("s3", "gs", "gcs")


def _remote_base(parts: SplitResult) -> str:
    """The manifest's folder as a URI; credentials in it (`s3://KEY:SECRET@bucket`) are
    dropped so that they never reach the `path` column of the store."""
    if parts.scheme not in _INHERIT_QUERY_SCHEMES:
        return urlunsplit((parts.scheme, parts.netloc, posixpath.dirname(parts.path), "", ""))
    return urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2],
                       posixpath.dirname(parts.path), parts.query, ""))


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _json_value(value: Any, column: str) -> Any:
    """CSV cells (and, leniently, any string) hold list columns as JSON text."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError as exc:
            raise ValueError(f"{column} is not valid JSON ({exc.msg})") from exc
    return value


def _video_id(value: Any) -> str:
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("empty video_id")
    if not isinstance(value, str):
        raise ValueError(f"video_id must be a string, got {type(value).__name__}")
    return value


def _path(value: Any) -> str:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise ValueError("empty path")
    if not isinstance(value, str):
        raise ValueError(f"path must be a string, got {type(value).__name__}")
    return value


def _caption(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"caption must be a string, got {type(value).__name__}")
    return value


def _captions(value: Any) -> list[str] | None:
    if value is None or value == "":
        return None
    value = _json_value(value, "captions")
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise ValueError("captions must be a list of strings")
    return value


def _segments(value: Any) -> list[dict[str, Any]] | None:
    if value is None or value == "":
        return None
    value = _json_value(value, "segments")
    if not isinstance(value, list):
        raise ValueError("segments must be a list of {start, end, text} objects")
    out = []
    for j, seg in enumerate(value):
        if not isinstance(seg, dict):
            raise ValueError(f"segments[{j}] must be an object with start, end, text")
        start, end, text = seg.get("start"), seg.get("end"), seg.get("text")
        if not (_is_number(start) and _is_number(end)):
            raise ValueError(f"segments[{j}]: start and end must be numbers (seconds)")
        if start > end:
            raise ValueError(f"segments[{j}]: start {start} > end {end}")
        if not isinstance(text, str):
            raise ValueError(f"segments[{j}]: text must be a string")
        out.append({"start": float(start), "end": float(end), "text": text})
    return out


class _Batcher:
    """Validates raw rows, checks id uniqueness while streaming, packs fixed-size batches."""

    def __init__(self, src: _Source, batch_rows: int, unit: str,
                 allow_duplicates: bool = False) -> None:
        self.src, self.batch_rows, self.unit = src, batch_rows, unit
        self.allow_duplicates = allow_duplicates
        # first location of each video_id, in ~25 bytes an id (a dict would need ~150)
        self.seen = IdSet()
        self.buf: dict[str, list[Any]] = {name: [] for name in COLUMNS}
        self.rows = 0

    def add(self, loc: int, get: Callable[[str], Any]) -> None:
        try:
            video_id = _video_id(get("video_id"))
            path = _resolve(_path(get("path")), self.src)
            caption = _caption(get("caption"))
            captions = _captions(get("captions"))
            segments = _segments(get("segments"))
        except ValueError as exc:
            raise ManifestError(f"manifest {self.src.uri} {self.unit} {loc}: {exc}") from None
        first = loc if self.allow_duplicates else self.seen.setdefault(video_id, loc)
        if first != loc:
            raise self.src.fail(
                f"duplicate video_id {video_id!r} ({self.unit}s {first} and {loc})")
        if caption is None and captions:
            caption = captions[0]
        for name, value in zip(COLUMNS, (video_id, path, caption, captions, segments),
                               strict=True):
            self.buf[name].append(value)
        self.rows += 1

    def full(self) -> bool:
        return len(self.buf["video_id"]) >= self.batch_rows

    def flush(self) -> pa.RecordBatch:
        arrays = [pa.array(self.buf[f.name], type=f.type) for f in MANIFEST]
        self.buf = {name: [] for name in COLUMNS}
        return pa.RecordBatch.from_arrays(arrays, schema=MANIFEST)

    def add_columns(self, first_loc: int, columns: dict[str, list[Any]], n: int
                    ) -> Iterator[pa.RecordBatch]:
        present = [(name, columns[name]) for name in COLUMNS if name in columns]
        for i in range(n):
            self.add(first_loc + i, {name: col[i] for name, col in present}.get)
            if self.full():
                yield self.flush()


def open_csv_as_strings(open_stream: Callable[[], pa.NativeFile], wanted: Sequence[str]
                        ) -> tuple[list[str], Iterator[pa.RecordBatch]]:
    """Header names, and batches of the `wanted` columns that exist, all read as strings.

    The header is probed first so that only known columns are converted: ids like `007`
    stay strings, and a stray extra column can never fail type inference mid-file.
    """
    parse = pacsv.ParseOptions(newlines_in_values=True)
    with open_stream() as probe:
        names = list(pacsv.open_csv(probe, parse_options=parse).schema.names)
    keep = [c for c in wanted if c in names]

    def batches() -> Iterator[pa.RecordBatch]:
        if not keep:
            return
        convert = pacsv.ConvertOptions(include_columns=keep,
                                       column_types={c: pa.string() for c in keep})
        with open_stream() as stream:
            yield from pacsv.open_csv(stream, parse_options=parse, convert_options=convert)

    return names, batches()


def _csv(src: _Source, out: _Batcher) -> Iterator[pa.RecordBatch]:
    def open_stream() -> pa.NativeFile:
        return src.fs.open_input_stream(src.path, compression=src.compression)

    try:
        names, batches = open_csv_as_strings(open_stream, COLUMNS)
    except pa.ArrowInvalid as exc:
        if "empty" in str(exc).lower():
            raise src.fail("no rows (empty file)") from None
        raise
    _require(src, names)
    loc = 1
    for batch in batches:
        yield from out.add_columns(loc, batch.to_pydict(), batch.num_rows)
        loc += batch.num_rows


def _jsonl(src: _Source, out: _Batcher) -> Iterator[pa.RecordBatch]:
    with src.fs.open_input_stream(src.path, compression=src.compression) as raw:
        text = io.TextIOWrapper(raw, encoding="utf-8-sig")
        for lineno, line in enumerate(text, start=1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ManifestError(
                    f"manifest {src.uri} line {lineno}: invalid JSON ({exc.msg})") from None
            if not isinstance(row, dict):
                raise ManifestError(f"manifest {src.uri} line {lineno}: expected a JSON object")
            for name in REQUIRED_COLUMNS:
                if name not in row:
                    raise ManifestError(
                        f"manifest {src.uri} line {lineno}: missing required column {name!r}")
            out.add(lineno, row.get)
            if out.full():
                yield out.flush()


def _parquet(src: _Source, out: _Batcher) -> Iterator[pa.RecordBatch]:
    with src.fs.open_input_file(src.path) as raw:
        pf = pq.ParquetFile(raw)
        names = pf.schema_arrow.names
        _require(src, names)
        loc = 1
        for batch in pf.iter_batches(batch_size=out.batch_rows,
                                     columns=[c for c in COLUMNS if c in names]):
            yield from out.add_columns(loc, batch.to_pydict(), batch.num_rows)
            loc += batch.num_rows


def _require(src: _Source, names: Sequence[str]) -> None:
    for name in REQUIRED_COLUMNS:
        if name not in names:
            raise src.fail(f"missing required column {name!r}")


_READERS = {"csv": (_csv, "row"), "jsonl": (_jsonl, "line"), "parquet": (_parquet, "row")}


def read_manifest(uri: str, batch_rows: int = 65536,
                  allow_duplicates: bool = False) -> Iterator[pa.RecordBatch]:
    """Stream a CSV / JSONL / Parquet manifest (local path or URI) as `MANIFEST` batches.

    A missing file or unknown format raises at once; row problems raise while iterating.
    Rows are numbered from 1 (CSV/Parquet data rows; JSONL file lines). Duplicate ids are an
    error unless `allow_duplicates` (for `vlprep scan`, which reports them as rows).
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be >= 1, got {batch_rows}")
    src = _locate(uri)
    reader, unit = _READERS[src.fmt]
    return _stream(src, reader, _Batcher(src, batch_rows, unit, allow_duplicates))


def _stream(src: _Source, reader: Callable[[_Source, _Batcher], Iterator[pa.RecordBatch]],
            out: _Batcher) -> Iterator[pa.RecordBatch]:
    try:
        yield from reader(src, out)
    except ManifestError:
        raise
    except (OSError, pa.ArrowException, UnicodeDecodeError) as exc:
        raise src.fail(f"cannot read {src.fmt}: {first_line(exc)}") from exc
    if out.buf["video_id"]:
        yield out.flush()
    if out.rows == 0:
        raise src.fail("no rows")


def manifest_fingerprint(uri: str) -> str:
    """sha256 of the manifest's raw bytes, streamed: tells a re-run whether its input changed."""
    src = _locate(uri)
    digest = hashlib.sha256()
    try:
        with src.fs.open_input_stream(src.path, compression=None) as f:
            while chunk := f.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise src.fail(f"cannot read: {first_line(exc)}") from exc
    return digest.hexdigest()
