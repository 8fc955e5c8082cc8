"""Run decode jobs in a killable child process: a hang becomes a timeout error, a decoder crash
(a segfault in FFmpeg or decord) loses only the video being decoded.

One persistent child per stage worker process and memory limit (``worker_for``), started on
first use and restarted after a kill or crash, so the per-video cost is one round trip of a
small pickled request, not a process start. Frames come back through a file on /dev/shm that
the child writes and the parent maps copy-on-write, so even a 30 fps VideoCLIP sample of a
long video crosses the process boundary without a copy.
"""

from __future__ import annotations

import atexit
import itertools
import mmap
import os
import signal
import subprocess
import sys
import tempfile
import threading
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

from vlprep.stages.base import VideoError
from vlprep.stages.decoders.job import ProbeRequest, SampleRequest, SampleResult

_SHM = "/dev/shm"
STARTUP_TIMEOUT = 120.0  # seconds for a fresh worker to load its libraries
_counter = itertools.count()


def _frames_dir() -> str:
    return _SHM if os.path.isdir(_SHM) and os.access(_SHM, os.W_OK) else tempfile.gettempdir()


class DecodeWorker:
    """A child process running :mod:`vlprep.stages.decoders.worker`."""

    def __init__(self, memory_limit_mb: int | None = None):
        self.memory_limit_mb = memory_limit_mb
        self.proc: subprocess.Popen | None = None
        self._requests: Connection | None = None
        self._responses: Connection | None = None
        self._lock = threading.Lock()
        self.starts = 0

    def _start(self) -> None:
        req_r, req_w = os.pipe()
        resp_r, resp_w = os.pipe()
        limit = (self.memory_limit_mb or 0) * 2**20
        env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1",
               "MKL_NUM_THREADS": "1"}
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "vlprep.stages.decoders.worker", str(req_r),
                 str(resp_w), str(limit)],
                pass_fds=(req_r, resp_w), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, env=env)
        finally:
            os.close(req_r)
            os.close(resp_w)
        self._requests = Connection(req_w, readable=False)
        self._responses = Connection(resp_r, writable=False)
        self.starts += 1
        # start-up (loading FFmpeg, numpy) does not count against a video's timeout
        try:
            ready = self._responses.poll(STARTUP_TIMEOUT) and self._responses.recv()[0]
        except (EOFError, OSError):
            ready = False
        if ready != "ready":
            reason = f"decode worker failed to start ({self._death()})"
            raise VideoError(reason)

    def stop(self) -> None:
        """Kill the child (if any) and forget it; the next call starts a fresh one."""
        proc, self.proc = self.proc, None
        for conn in (self._requests, self._responses):
            if conn is not None:
                conn.close()
        self._requests = self._responses = None
        if proc is not None and proc.poll() is None:
            proc.kill()
        if proc is not None:
            proc.wait()

    def call(self, op: str, request: Any, timeout: float | None, out_path: str = "") -> Any:
        """Send one job and wait for its answer; VideoError on failure, timeout or crash."""
        with self._lock:
            if self.proc is None or self.proc.poll() is not None:
                self.stop()
                self._start()
            assert self._requests is not None and self._responses is not None
            try:
                self._requests.send((op, request, out_path))
                ready = self._responses.poll(timeout)
            except (BrokenPipeError, OSError):
                ready = True  # the child is gone; recv below reports how
            if not ready:
                self.stop()
                raise VideoError(f"{op} timed out after {timeout:g} s (decoder killed)",
                                 code="timeout")
            try:
                status, payload, retire = self._responses.recv()
            except (EOFError, OSError):
                raise VideoError(f"decoder crashed during {op} ({self._death()})") from None
            if retire:
                self.stop()
        if status == "error":
            raise VideoError(*payload)
        return payload

    def _death(self) -> str:
        """How the child ended (it has closed its pipe, or failed to start)."""
        proc, code = self.proc, None
        if proc is not None:
            try:
                code = proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.stop()
                return "not responding, killed"
        self.stop()
        if code is not None and code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    def probe(self, request: ProbeRequest, timeout: float | None) -> dict[str, Any]:
        return self.call("probe", request, timeout)

    def sample(self, request: SampleRequest, timeout: float | None) -> SampleResult:
        path = _frames_path()
        try:
            result: SampleResult = self.call("sample", request, timeout, path)
            crop = request.crop or request.size
            result.frames = _map_frames(path, (len(result.indices), crop, crop, 3))
        finally:
            _unlink(path)
        return result

    def plan(self, request: SampleRequest, timeout: float | None) -> SampleResult:
        """A videoclip sample without frames (see :mod:`vlprep.stages.decoders.stream`)."""
        return self.call("plan", request, timeout)

    def chunk(self, request: SampleRequest, start: int, count: int,
              timeout: float | None) -> np.ndarray:
        """Slots ``start .. start + count`` of a videoclip sample, decoded by the child."""
        path = _frames_path()
        try:
            self.call("chunk", (request, start, count), timeout, path)
            crop = request.crop or request.size
            return _map_frames(path, (count, crop, crop, 3))
        finally:
            _unlink(path)


def _frames_path() -> str:
    return os.path.join(_frames_dir(), f"vlprep-frames-{os.getpid()}-{next(_counter)}")


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _map_frames(path: str, shape: tuple[int, ...]) -> np.ndarray:
    """The child's frame file as a writable array (copy-on-write mapping; the file may be
    unlinked right after, the mapping keeps the pages)."""
    size = int(np.prod(shape))
    if size == 0:
        return np.zeros(shape, np.uint8)
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size < size:
            raise VideoError("decoder returned fewer frame bytes than announced")
        buffer = mmap.mmap(f.fileno(), size, access=mmap.ACCESS_COPY)
    return np.ndarray(shape, np.uint8, buffer=buffer)


_WORKERS: dict[int | None, DecodeWorker] = {}
_WORKERS_LOCK = threading.Lock()


def worker_for(memory_limit_mb: int | None) -> DecodeWorker:
    """This process's worker for the given memory limit (shared by every stage instance, so
    Ray task workers that rebuild the stage per batch keep their child)."""
    with _WORKERS_LOCK:
        worker = _WORKERS.get(memory_limit_mb)
        if worker is None:
            worker = _WORKERS[memory_limit_mb] = DecodeWorker(memory_limit_mb)
        return worker


@atexit.register
def _stop_all() -> None:
    for worker in list(_WORKERS.values()):
        worker.stop()

