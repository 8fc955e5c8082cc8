"""Frame decoders behind one interface, so samplers never care which library decodes.

``open_video(path, decoder)`` gives a :class:`VideoSource` (frame count, average fps, and
``read(indices)``); ``decode_frames(path, indices, decoder)`` is the one-call form. Frames come
back as uint8 RGB, N x H x W x 3, in the order of ``indices`` (repeats allowed). Both decoders
number frames in presentation order and give identical pixels (tested on real clips), so a
job can switch decoder without changing its output. Display rotation is not applied.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, Protocol

import av
import numpy as np

from vlprep.stages.base import VideoError

Decoder = Literal["decord", "pyav"]


class VideoSource(Protocol):
    """An opened video: how many frames it has, its average rate, and random frame access."""

    frame_count: int
    fps: float

    def read(self, indices: np.ndarray) -> np.ndarray: ...


def av_reason(exc: BaseException) -> str:
    """FFmpeg's own words without the errno and path noise PyAV adds."""
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


def _check_file(path: str) -> None:
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise VideoError(f"cannot read file: {e.strerror or e}") from None
    if size == 0:
        raise VideoError("empty file (0 bytes)")


class DecordSource:
    """decord's VideoReader: seeks to the keyframe before each target, so sparse reads are fast."""

    def __init__(self, path: str):
        import decord  # imported here: only workers that decode need the native library

        _check_file(path)
        try:
            self._reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
        except Exception as e:  # noqa: BLE001 - decord raises RuntimeError or DECORDError
            raise VideoError(f"decord cannot open the video: {_first_line(e)}") from None
        self.frame_count = len(self._reader)
        self.fps = float(self._reader.get_avg_fps())

    def read(self, indices: np.ndarray) -> np.ndarray:
        try:
            return self._reader.get_batch([int(i) for i in indices]).asnumpy()
        except Exception as e:  # noqa: BLE001
            raise VideoError(f"decode failed: {_first_line(e)}") from None


class PyAVSource:
    """PyAV, decoding sequentially from the start and keeping the target frames.

    Slower than decord for sparse samples of long videos, but has no extra native dependency
    and is the reference the decord output is checked against.
    """

    def __init__(self, path: str):
        _check_file(path)
        self.path = path
        try:
            with av.open(path) as container:
                if not container.streams.video:
                    raise VideoError("no video stream")
                stream = container.streams.video[0]
                self.fps = float(stream.average_rate or stream.guessed_rate or 0.0)
                self.frame_count = stream.frames or _count_packets(container, stream)
        except av.FFmpegError as e:
            raise VideoError(f"not a readable video: {av_reason(e)}") from None

    def read(self, indices: np.ndarray) -> np.ndarray:
        wanted = {int(i) for i in indices}
        last = max(wanted)
        got: dict[int, np.ndarray] = {}
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                for n, frame in enumerate(container.decode(stream)):
                    if n in wanted:
                        got[n] = frame.to_ndarray(format="rgb24")
                    if n >= last:
                        break
        except av.FFmpegError as e:
            raise VideoError(f"decode failed: {av_reason(e)}") from None
        missing = sorted(wanted - got.keys())
        if missing:
            raise VideoError(f"decode failed: the video ended before frame {missing[0]}")
        return np.stack([got[int(i)] for i in indices])


def _count_packets(container: av.container.InputContainer, stream: av.VideoStream) -> int:
    """Frame count by demuxing (no decoding) when the container does not store it."""
    return sum(1 for p in container.demux(stream) if p.size)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


SOURCES: dict[str, type] = {"decord": DecordSource, "pyav": PyAVSource}


def open_video(path: str, decoder: Decoder = "decord") -> VideoSource:
    """Open `path` with the named decoder; a bad video raises VideoError."""
    try:
        cls = SOURCES[decoder]
    except KeyError:
        raise ValueError(f"unknown decoder {decoder!r} (known: {', '.join(SOURCES)})") from None
    return cls(path)


def decode_frames(path: str, indices: Sequence[int] | np.ndarray,
                  decoder: Decoder = "decord") -> np.ndarray:
    """Decode the frames at `indices` (presentation order) as uint8 RGB, N x H x W x 3."""
    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        raise ValueError("no frame indices to decode")
    source = open_video(path, decoder)
    if indices.min() < 0 or indices.max() >= source.frame_count:
        raise VideoError(f"frame index out of range (the video has {source.frame_count} frames)")
    return source.read(indices)
