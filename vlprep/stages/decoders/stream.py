"""Dense videoclip frames of one video, chunk by chunk, so memory stays flat in its length.

:func:`plan_dense` opens a video and returns its sample without pixels (which frame every slot
shows, times, windows, the rotation). :func:`read_chunk` then decodes any run of consecutive
slots. The process (the decode worker, or the stage's own process without isolation) keeps
one open :class:`DenseSession`: a chunk that continues the previous one continues its decode,
so a video read chunk by chunk is decoded once, front to back, as in one piece; any other
chunk seeks to the keyframe before its first frame (a restarted worker, a retry).
"""

from __future__ import annotations

import threading
from dataclasses import replace

import numpy as np

from vlprep.stages.decoders.dense import DenseReader
from vlprep.stages.decoders.job import (
    Allocate,
    SampleRequest,
    SampleResult,
    dense_in_order,
    geometry_of,
    open_sample,
    result_of,
)
from vlprep.stages.decoders.media import (
    check_input,
    first_frame,
    open_container,
    rotation_of,
)


def plan_dense(req: SampleRequest) -> SampleResult:
    """The videoclip sample of `req` without frames; its ``rotation`` is resolved, so chunk
    requests can carry it (``replace(req, rotation=result.rotation)``)."""
    if not dense_in_order(req):
        raise ValueError("streamed frames need the videoclip sampler and the pyav decoder")
    size = check_input(req.path, req.caps)
    with open_container(req.path) as container:
        opened = open_sample(req, container, size)
        rotation = opened.rotation
        if rotation is None:
            rotation = rotation_of(first_frame(container, opened.stream))
        result = result_of(opened, rotation, {"returned": int(opened.plan.valid.sum())})
        result.decoder = "pyav"
        return result


class DenseSession:
    """One open video and its front-to-back decode."""

    def __init__(self, req: SampleRequest):
        self.req = req
        size = check_input(req.path, req.caps)
        self.container = open_container(req.path)
        try:
            opened = open_sample(req, self.container, size)
            crop = req.crop or req.size
            self.length = len(opened.plan.indices)
            self.crop = crop
            self.reader = DenseReader(self.container, opened.stream, opened.index,
                                      opened.source, geometry_of(req, opened.rotation))
        except BaseException:
            self.container.close()
            raise

    def read(self, start: int, count: int, allocate: Allocate) -> np.ndarray:
        if start < 0 or count < 0 or start + count > self.length:
            raise ValueError(f"slots {start}..{start + count} outside 0..{self.length}")
        out = allocate((count, self.crop, self.crop, 3))
        self.reader.fill(start, out)
        return out

    def close(self) -> None:
        self.container.close()


_SESSION: DenseSession | None = None
_LOCK = threading.Lock()


def read_chunk(req: SampleRequest, start: int, count: int, allocate: Allocate) -> np.ndarray:
    """Slots ``[start, start + count)`` of `req`'s videoclip frames into ``allocate(shape)``;
    the session stays open for the next chunk and closes after the last one or on an error."""
    global _SESSION
    with _LOCK:
        if _SESSION is not None and _SESSION.req != req:
            _close()
        try:
            if _SESSION is None:
                _SESSION = DenseSession(req)
            out = _SESSION.read(start, count, allocate)
        except BaseException:
            _close()
            raise
        if start + count >= _SESSION.length:
            _close()
        return out


def _close() -> None:
    global _SESSION
    session, _SESSION = _SESSION, None
    if session is not None:
        session.close()


def chunk_request(req: SampleRequest, plan: SampleResult) -> SampleRequest:
    """The request chunks are read with: the plan's rotation, so every chunk (and every
    process) agrees on the geometry."""
    return replace(req, rotation=plan.rotation)
