"""The decode worker: a child process that runs probe and sample jobs for its parent.

Started by :class:`vlprep.stages.decoders.isolation.DecodeWorker` as
``python -m vlprep.stages.decoders.worker REQUEST_FD RESPONSE_FD MEMORY_LIMIT_BYTES``. It reads
pickled ``(op, request, out_path)`` messages (after announcing ``("ready", ...)`` once its
libraries are loaded; ops: ``probe``, ``sample``, and for streamed videoclip frames ``plan``
and ``chunk``, see :mod:`vlprep.stages.decoders.stream`), writes a sample's frames straight
into the file
``out_path`` (on /dev/shm, so the parent maps them without a copy through a pipe) and answers
``("ok", result, retire)`` or ``("error", (reason, code), retire)``; ``retire`` says it
exits now (it came close to its memory limit). It exits when the parent closes the
request pipe, and the kernel kills it if the parent dies first. Its address space is capped,
so a decoder that runs away with memory fails here instead of taking the stage worker down.
"""

from __future__ import annotations

import mmap
import os
import resource
import signal
import sys
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

Allocate = Callable[[tuple[int, ...]], np.ndarray]


def _die_with_parent() -> None:
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: the closed request pipe still ends the loop


def _limit_memory(limit: int) -> None:
    if limit > 0:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _into_file(out_path: str, fill: Callable[[Allocate], Any]) -> Any:
    """Run ``fill(allocate)`` with frames allocated in the shared file ``out_path``."""
    maps: list[mmap.mmap] = []

    def allocate(shape: tuple[int, ...]) -> np.ndarray:
        size = int(np.prod(shape))
        fd = os.open(out_path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
            maps.append(mmap.mmap(fd, max(size, 1)) if size else mmap.mmap(-1, 1))
        finally:
            os.close(fd)
        return np.ndarray(shape, np.uint8, buffer=maps[0])

    try:
        return fill(allocate)
    finally:
        for m in maps:
            try:
                m.close()
            except BufferError:
                pass  # a view is still alive; the parent reads the file, not this map


def _sample(request: Any, out_path: str) -> Any:
    from vlprep.stages.decoders.job import run_sample

    return _into_file(out_path, lambda allocate: run_sample(request, allocate))


def _chunk(request: Any, out_path: str) -> dict[str, Any]:
    from vlprep.stages.decoders.stream import read_chunk

    req, start, count = request
    _into_file(out_path, lambda allocate: read_chunk(req, start, count, allocate))
    return {"worker_peak_rss_mb": _peak_rss_mb()}


def _run(op: str, request: Any, out_path: str) -> Any:
    if op == "probe":
        from vlprep.stages.decoders.job import run_probe

        return run_probe(request)
    if op == "plan":
        from vlprep.stages.decoders.stream import plan_dense

        return plan_dense(request)
    if op == "chunk":
        return _chunk(request, out_path)
    result = _sample(request, out_path)
    result.stats["worker_peak_rss_mb"] = _peak_rss_mb()
    return result


MEMORY_SIGNS = ("Cannot allocate memory", "Resource temporarily unavailable",
                "failed to map segment")
NEAR_LIMIT = 256 * 2**20  # closer than this to the cap counts as having hit it


def _proc_status_bytes(field: str) -> int:
    """A size from /proc/self/status in bytes (0 where /proc is missing)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(f"{field}:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _vm_peak() -> int:
    """Peak address-space size of this process in bytes."""
    return _proc_status_bytes("VmPeak")


def _near_limit(limit: int) -> bool:
    return limit > 0 and limit - _vm_peak() < NEAR_LIMIT


def _explain(reason: str, limit: int) -> str:
    """Decoders report a failed allocation as anything from ENOMEM to 'Invalid data'; name
    the memory limit when the process got close to it."""
    if limit > 0 and (any(sign in reason for sign in MEMORY_SIGNS) or _near_limit(limit)):
        return f"{reason} (decode worker memory limit of {limit // 2**20} MB reached)"
    return reason


def serve(requests: Connection, responses: Connection, limit: int = 0) -> None:
    try:
        from vlprep.stages.base import VideoError
        from vlprep.stages.decoders import job, stream  # noqa: F401 - loaded before "ready"
    except (ImportError, MemoryError) as e:  # e.g. a memory limit too small to load FFmpeg
        responses.send(("ready", None, False))
        _refuse_all(requests, responses, _explain(f"decode worker cannot start: {e}", limit))
        return
    responses.send(("ready", None, False))  # the parent starts its per-video clock after this
    while True:
        try:
            op, request, out_path = requests.recv()
        except (EOFError, OSError):
            return
        try:
            reply: tuple = ("ok", _run(op, request, out_path))
        except VideoError as e:
            reply = ("error", (_explain(str(e), limit), e.code))
        except MemoryError:
            reply = ("error", (_explain("Cannot allocate memory", limit), "over_caps"))
        except Exception as e:  # noqa: BLE001 - any failure is this video's, not the worker's
            reply = ("error", (_explain(f"{type(e).__name__}: {e}", limit), "unreadable"))
        retire = _near_limit(limit)  # start afresh: the parent restarts us for the next video
        responses.send((*reply, retire))
        if retire:
            return


def _refuse_all(requests: Connection, responses: Connection, reason: str) -> None:
    while True:
        try:
            requests.recv()
        except (EOFError, OSError):
            return
        responses.send(("error", (reason, "unreadable"), True))


def _peak_rss_mb() -> float:
    """Peak resident memory of this process so far. VmHWM, not ru_maxrss: Linux carries
    ru_maxrss over from the parent across fork and exec, so a worker started by a large
    process would report its parent's size."""
    peak = _proc_status_bytes("VmHWM")
    if peak:
        return peak / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main(argv: list[str]) -> None:
    request_fd, response_fd, limit = (int(a) for a in argv[1:4])
    _die_with_parent()
    _limit_memory(limit)
    serve(Connection(request_fd, writable=False), Connection(response_fd, readable=False), limit)


if __name__ == "__main__":
    main(sys.argv)
