"""A local file for a video URI: decoders (decord, PyAV, ffmpeg) need a path they can seek.

Local paths (and ``file://`` URIs) are used as they are. Anything else (``s3://``, ``gs://``,
``http(s)://``, any fsspec scheme) is downloaded once, whole, into a per-process cache and
the cached file's path is returned. Whole-object reads suit object stores (one request,
no ranged re-reads while seeking), and the cache means the probe and sample stages, which
usually run fused in the same worker process, fetch each video once.

The cache is bounded (``VLPREP_MEDIA_CACHE_BYTES``, default 2 GiB; the newest file is always
kept), lives in a ``vlprep-media-<pid>-*`` folder under the temp directory, is removed when
the process exits, and folders left by killed processes are removed by the next cache made.
Endpoints and credentials are the filesystem's: a URI query (``?endpoint_override=...``) or
the standard environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...).
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
import threading
import uuid
from collections import OrderedDict
from urllib.parse import unquote, urlsplit

import pyarrow.fs as pafs

from vlprep.stages.base import VideoError

CACHE_BYTES_ENV = "VLPREP_MEDIA_CACHE_BYTES"
_DEFAULT_CACHE_BYTES = 2 * 2**30
_PREFIX = "vlprep-media-"


def is_local(uri: str) -> bool:
    """True for plain paths and file:// URIs: decoders can open them directly."""
    scheme = urlsplit(uri).scheme
    return "://" not in uri or scheme == "file" or len(scheme) == 1  # "C:" is a drive


def local_path(uri: str, max_bytes: int | None = None) -> str:
    """A local path holding the video at `uri`; a missing or unreadable object is a VideoError.

    `max_bytes` refuses bigger remote objects before downloading them.
    """
    if is_local(uri):
        return unquote(urlsplit(uri).path) if uri.startswith("file://") else uri
    return _cache().get(uri, max_bytes)


class _Cache:
    """Downloaded files by URI, least recently used evicted first, bounded in bytes."""

    def __init__(self, limit: int) -> None:
        self.pid = os.getpid()
        self.limit = limit
        _remove_stale_dirs()
        self.dir = tempfile.mkdtemp(prefix=f"{_PREFIX}{self.pid}-")
        self.files: OrderedDict[str, tuple[str, int]] = OrderedDict()  # uri -> (path, bytes)
        self.lock = threading.Lock()
        atexit.register(shutil.rmtree, self.dir, True)

    def get(self, uri: str, max_bytes: int | None) -> str:
        with self.lock:
            hit = self.files.get(uri)
            if hit and os.path.exists(hit[0]):
                self.files.move_to_end(uri)
                return hit[0]
            path, size = self._download(uri, max_bytes)
            self.files[uri] = (path, size)
            self._evict()
            return path

    def _download(self, uri: str, max_bytes: int | None) -> tuple[str, int]:
        fs, path = _open(uri)
        try:
            info = fs.get_file_info(path)
            if info.type == pafs.FileType.NotFound:
                raise VideoError(f"cannot read file: no such object {uri}", code="missing")
            if info.type != pafs.FileType.File:
                raise VideoError(f"cannot read file: {uri} is not a file")
            if max_bytes is not None and info.size is not None and info.size > max_bytes:
                raise VideoError(f"file too large ({info.size} bytes > max_file_bytes "
                                 f"{max_bytes})", code="over_caps")
            suffix = os.path.splitext(urlsplit(uri).path)[1][:16]
            local = os.path.join(self.dir, uuid.uuid4().hex + suffix)
            size = 0
            with fs.open_input_stream(path) as src, open(local + ".part", "wb") as dst:
                while chunk := src.read(4 << 20):
                    dst.write(chunk)
                    size += len(chunk)
            os.replace(local + ".part", local)  # a cached path is always a whole file
            return local, size
        except OSError as e:
            raise VideoError(f"cannot read file: {_first_line(e)}") from None

    def _evict(self) -> None:
        total = sum(size for _, size in self.files.values())
        while total > self.limit and len(self.files) > 1:
            _, (path, size) = self.files.popitem(last=False)
            total -= size
            try:
                os.remove(path)  # a decoder still holding it open keeps reading (POSIX)
            except OSError:
                pass


_state: dict[str, _Cache] = {}
_state_lock = threading.Lock()


def _cache() -> _Cache:
    """This process's cache (a forked child makes its own)."""
    with _state_lock:
        cache = _state.get("cache")
        if cache is None or cache.pid != os.getpid():
            limit = int(os.environ.get(CACHE_BYTES_ENV) or _DEFAULT_CACHE_BYTES)
            cache = _state["cache"] = _Cache(limit)
        return cache


def _open(uri: str) -> tuple[pafs.FileSystem, str]:
    from vlprep.store.fs import open_filesystem  # pyarrow's filesystems, then fsspec's

    try:
        return open_filesystem(uri)
    except (OSError, ValueError, ImportError) as e:
        raise VideoError(f"cannot read file: {_first_line(e)}") from None


def _remove_stale_dirs() -> None:
    """Remove cache folders whose process is gone (killed workers cannot clean up)."""
    root = tempfile.gettempdir()
    try:
        names = os.listdir(root)
    except OSError:
        return
    for name in names:
        pid = name[len(_PREFIX):].split("-", 1)[0]
        if name.startswith(_PREFIX) and pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
