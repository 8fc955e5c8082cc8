"""Opening inputs, probe facts, caps, and the frame index.

The frame index is the timeline every decoder and sampler shares: frame ``i`` is the ``i``-th
frame in presentation order, with the pts the container gives it (so recorded times equal
ffprobe's ``pts_time``). It comes from demuxing packets, which reads the file but decodes
nothing, and it also yields the exact frame count and the keyframes that seeking plans use.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import av
import numpy as np

from vlprep.stages.base import VideoError


@dataclass(frozen=True)
class Caps:
    """Limits that turn oversized inputs into errors before anything big is allocated."""

    max_file_bytes: int | None = None
    max_pixels: int | None = None  # width x height of one frame
    max_duration: float | None = None  # seconds


@dataclass
class FrameIndex:
    pts: np.ndarray  # int64, presentation order
    durations: np.ndarray  # int64, packet durations (0 when unknown)
    keyframes: np.ndarray  # int64, presentation indices of keyframes, sorted
    time_base: Fraction
    container_start: int  # the container's start time in time_base units (the CLI's shift)
    exact: bool  # False: no usable pts, frames are counted in decode output order instead

    def __len__(self) -> int:
        return len(self.pts)

    def times(self, indices: np.ndarray) -> np.ndarray:
        """Seconds (pts x time base) of the frames at `indices`."""
        return self.pts[np.asarray(indices, dtype=np.int64)] * float(self.time_base)


def av_reason(exc: BaseException) -> str:
    """FFmpeg's own words without the errno and path noise PyAV adds."""
    return getattr(exc, "strerror", None) or str(exc).splitlines()[0]


def is_url(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def check_input(path: str, caps: Caps) -> int | None:
    """The file size (None for URLs and pipes); readable errors for missing, empty, oversized
    or special files, before FFmpeg sees them."""
    if is_url(path):
        return None
    try:
        info = os.stat(path)
    except FileNotFoundError as e:
        raise VideoError(f"cannot read file: {e.strerror or e}", code="missing") from None
    except OSError as e:
        raise VideoError(f"cannot read file: {e.strerror or e}") from None
    if stat.S_ISDIR(info.st_mode):
        raise VideoError("cannot read file: is a directory")
    if not stat.S_ISREG(info.st_mode):
        return None  # a FIFO or device: size unknown, read as a stream
    if info.st_size == 0:
        raise VideoError("empty file (0 bytes)")
    if caps.max_file_bytes is not None and info.st_size > caps.max_file_bytes:
        raise VideoError(f"file too large ({info.st_size} bytes > max_file_bytes "
                         f"{caps.max_file_bytes})", code="over_caps")
    return info.st_size


def open_container(path: str) -> av.container.InputContainer:
    """Open with FFmpeg; refuses inputs without a video stream and still images (FFmpeg reads
    a PNG or JPEG as a one-frame video)."""
    try:
        container = av.open(path, metadata_errors="ignore")
    except av.FFmpegError as e:
        raise VideoError(f"not a readable video: {av_reason(e)}") from None
    name = container.format.name
    if name == "image2" or name.endswith("_pipe"):
        container.close()
        raise VideoError(f"a still image ({name.removesuffix('_pipe')}), not a video",
                         code="no_video_stream")
    if not container.streams.video:
        container.close()
        raise VideoError("no video stream", code="no_video_stream")
    return container


def video_stream(container: av.container.InputContainer) -> av.VideoStream:
    """The first real video stream (attached cover pictures in audio files do not count)."""
    for stream in container.streams.video:
        if not stream.disposition & av.stream.Disposition.attached_pic:
            return stream
    raise VideoError("no video stream (only an attached picture)", code="no_video_stream")


def build_index(container: av.container.InputContainer, stream: av.VideoStream) -> FrameIndex:
    """Demux every packet of `stream` (no decoding) into the presentation-order frame index."""
    pts, dur, key = [], [], []
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:
                continue
            pts.append(packet.pts)
            dur.append(packet.duration or 0)
            key.append(packet.is_keyframe)
    except av.FFmpegError as e:
        if not pts:
            raise VideoError(f"not a readable video: {av_reason(e)}") from None
        # a truncated tail: index what was read, as decoders will decode up to there
    if not pts:
        raise VideoError("the video has no frames")
    time_base = stream.time_base or Fraction(1, 90000)
    start = container.start_time  # microseconds, or None
    container_start = 0 if start is None else round(Fraction(start, 1_000_000) / time_base)
    exact = None not in pts and len(set(pts)) == len(pts)
    if not exact:  # no timestamps to match frames by: count frames in output order
        n = len(pts)
        rate = stream.average_rate or stream.guessed_rate or Fraction(25)
        step = max(1, round(1 / (rate * time_base)))
        return FrameIndex(np.arange(n, dtype=np.int64) * step, np.full(n, step, np.int64),
                          np.zeros(1, np.int64), time_base,
                          container_start, exact=False)
    order = np.argsort(np.asarray(pts, dtype=np.int64), kind="stable")
    return FrameIndex(
        pts=np.asarray(pts, dtype=np.int64)[order],
        durations=np.asarray(dur, dtype=np.int64)[order],
        keyframes=np.flatnonzero(np.asarray(key, dtype=bool)[order]).astype(np.int64),
        time_base=time_base, container_start=container_start, exact=True)


def probe_facts(container: av.container.InputContainer, stream: av.VideoStream,
                file_size: int | None) -> dict[str, Any]:
    """Container facts that need no decoding (duration, rates, size, codec, streams)."""
    if stream.duration is not None and stream.time_base is not None:
        duration = float(stream.duration * stream.time_base)
    elif container.duration is not None:
        duration = container.duration / av.time_base
    else:
        duration = 0.0
    ctx = stream.codec_context
    start = stream.start_time
    return {
        "duration": duration,
        "fps": float(stream.average_rate or stream.guessed_rate or 0.0),
        "real_fps": float(stream.base_rate or stream.guessed_rate or 0.0),
        "frame_count": int(stream.frames or 0),
        "width": int(ctx.width or 0),
        "height": int(ctx.height or 0),
        "codec": ctx.name,
        "pix_fmt": ctx.pix_fmt,
        "bit_rate": int(ctx.bit_rate or container.bit_rate or 0) or None,
        "start_time": float(start * stream.time_base) if start is not None else 0.0,
        "streams": [f"{s.type}:{s.codec_context.name if s.codec_context else '?'}"
                    for s in container.streams],
        "file_size": file_size,
    }


def check_caps(facts: dict[str, Any], caps: Caps) -> None:
    pixels = facts["width"] * facts["height"]
    if caps.max_pixels is not None and pixels > caps.max_pixels:
        raise VideoError(f"frame too large ({facts['width']}x{facts['height']} = {pixels} "
                         f"pixels > max_pixels {caps.max_pixels})", code="over_caps")
    if caps.max_duration is not None and facts["duration"] > caps.max_duration:
        raise VideoError(f"video too long ({facts['duration']:.1f} s > max_duration "
                         f"{caps.max_duration:g} s)", code="over_caps")


def check_complete(stream: av.VideoStream, file_size: int | None) -> None:
    """A truncated file whose header indexes data past its end (MP4/MOV keep such an index;
    other containers are checked when their packets are read)."""
    if file_size is None:
        return
    entries = stream.index_entries
    end = max((e.pos + e.size for e in entries if e.pos >= 0), default=0) if entries else 0
    if end > file_size:
        raise VideoError(f"truncated file: the index points to byte {end}, the file has "
                         f"{file_size} bytes")


def first_frame(container: av.container.InputContainer, stream: av.VideoStream) -> av.VideoFrame:
    """Decode the first frame: proves the stream decodes and carries the display rotation."""
    try:
        container.seek(0, stream=stream)
    except av.FFmpegError:
        pass  # unseekable input that has not been read yet: already at the start
    try:
        frame = next(container.decode(stream), None)
    except av.FFmpegError as e:
        raise VideoError(f"cannot decode the video: {av_reason(e)}") from None
    if frame is None:
        raise VideoError("no decodable video frame")
    return frame


def rotation_of(frame: av.VideoFrame) -> int:
    """Display rotation in degrees counter-clockwise, snapped to a multiple of 90."""
    return int(round((frame.rotation or 0) / 90.0)) * 90 % 360
