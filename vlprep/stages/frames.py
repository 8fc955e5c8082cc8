"""Sampled frames as they pass from a sampling stage to the model stages.

A job may sample the same video several ways (8 uniform frames for CLIP, 30 fps windows for
S3D, 12 frames for the detector); each sample stage stores its result under its own record key
(option ``key``) and each model stage names the key it reads (option ``frames``).

Dense videoclip frames of a long video are too big to hold (an hour at 224 is 16 GB), so the
sample stage leaves :class:`StreamedFrames` for them: the same fields, but the pixels are
decoded when read. A consumer that can work window by window (the s3d stage) iterates
:meth:`SampledFrames.chunks`; one that reads ``.frames`` gets the whole array, decoded then.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from vlprep.stages.base import Record, VideoError


@dataclass
class SampledFrames:
    frames: np.ndarray  # uint8, N x H x W x 3, RGB
    indices: np.ndarray  # int64, N: frame index in the decoded timeline
    times: np.ndarray  # float32, N: seconds
    sampler: str = ""
    window_starts: np.ndarray | None = None  # float32, seconds: start of each fixed window
    # added by the decoding issue (vlprep/stages/sample.py):
    valid: np.ndarray | None = None  # bool, N: False for zero padding (index -1, time NaN)
    snapped: np.ndarray | None = None  # bool, N: moved to a keyframe (snap: keyframe)
    window: int = 0  # frames per window when window_starts is set (frames = windows x window)
    fps: float = 0.0  # the source's average frame rate
    frame_count: int = 0  # frames in the source (its presentation-order timeline)
    decoder: str = ""  # the backend that decoded them (pyav after a fallback)
    fallback: str | None = None  # why the chosen decoder did not (sample option fallback)

    def __len__(self) -> int:
        return len(self.frames)

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        """The frames in consecutive pieces of `size` frames (the last may be shorter)."""
        for start in range(0, len(self), size):
            yield self.frames[start:start + size]


class FrameSource(Protocol):
    length: int

    def read(self, start: int, count: int) -> np.ndarray: ...


class StreamedFrames(SampledFrames):
    """SampledFrames whose pixels stay in the video until read: :meth:`chunks` decodes piece
    by piece (the next piece is decoded while the caller works on this one, so at most two
    are alive), ``.frames`` decodes them all (and keeps them)."""

    def __init__(self, source: FrameSource, **fields: Any):
        self.source = source
        self._frames: np.ndarray | None = None
        super().__init__(frames=None, **fields)  # type: ignore[arg-type]

    @property  # type: ignore[override]
    def frames(self) -> np.ndarray:
        if self._frames is None:
            self._frames = self.source.read(0, self.source.length)
        return self._frames

    @frames.setter
    def frames(self, value: np.ndarray | None) -> None:
        self._frames = value

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:  # the dataclass repr would decode the frames
        state = "decoded" if self._frames is not None else "not decoded"
        return f"StreamedFrames({len(self)} frames, {state}, source={self.source!r})"

    def chunks(self, size: int) -> Iterator[np.ndarray]:
        if self._frames is not None:
            yield from super().chunks(size)
            return
        n = self.source.length
        pool = _prefetcher()
        pending = pool.submit(self.source.read, 0, min(size, n)) if n else None
        try:
            for start in range(0, n, size):
                assert pending is not None
                chunk = pending.result()
                nxt = start + size
                pending = pool.submit(self.source.read, nxt, min(size, n - nxt)) \
                    if nxt < n else None
                yield chunk
                del chunk
        finally:
            if pending is not None:  # abandoned early: let the read finish, drop its frames
                pending.cancel() or pending.exception()


_PREFETCH: list[ThreadPoolExecutor] = []


def _prefetcher() -> ThreadPoolExecutor:
    """One reader thread for the life of the process: a decode worker it starts is tied to
    the thread that started it (the child gets SIGKILL when that thread ends), so the thread
    must not end after each video."""
    if not _PREFETCH:
        _PREFETCH.append(ThreadPoolExecutor(1, thread_name_prefix="frames-prefetch"))
    return _PREFETCH[0]


def get_frames(record: Record, key: str) -> SampledFrames:
    """The frames a sample stage left under `key`; a readable error when there are none."""
    sampled = record.get(key)
    if not isinstance(sampled, SampledFrames) or len(sampled) == 0:
        raise VideoError(f"no sampled frames under {key!r} (is a sample stage with "
                         f"key: {key} before this one?)")
    return sampled
