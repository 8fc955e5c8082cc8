"""Exact sparse decoding with PyAV, decoding as little as the codec allows.

Targets (presentation indices) are sorted and grouped into *runs*: a new run starts only when
a keyframe lies past the frame after the previous target, so the decoder seeks only when that
skips work, and no GOP is decoded twice. A run seeks to the last keyframe at or before its
first target (by the keyframe's pts: FFmpeg's demuxers take seek times as presentation
times), feeds packets in decode order until every target's packet has been fed, then drains
the decoder. Frames are matched to
targets by pts, never by counting, so a seek that lands early costs time, not correctness.

While feeding, packets of frames nobody needs are decoded with ``skip_frame = NONREF``: the
decoder drops them if no other frame references them (B-frames), which is safe for the codecs
in :data:`NONREF_SAFE` and verified bit-exact against full decoding in the tests. Frames are
never converted unless they are targets.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import av
import numpy as np

from vlprep.stages.base import VideoError
from vlprep.stages.decoders.media import FrameIndex, av_reason

# Codecs whose decoders implement skip_frame=NONREF by dropping only unreferenced frames.
NONREF_SAFE = frozenset({"h264", "hevc", "mpeg1video", "mpeg2video", "mpeg4", "h263"})

Emit = Callable[[int, av.VideoFrame], None]


@dataclass
class DecodeStats:
    decoded: int = 0  # frames the decoder produced (skipped non-reference frames excluded)
    seeks: int = 0


def plan_runs(index: FrameIndex, targets: np.ndarray) -> list[tuple[int, list[int]]]:
    """[(keyframe to seek to, targets decoded from it)], targets sorted and unique."""
    keyframes = index.keyframes
    runs: list[tuple[int, list[int]]] = []
    prev = -1
    for t in (int(x) for x in targets):
        pos = int(np.searchsorted(keyframes, t, side="right")) - 1
        key = int(keyframes[pos]) if pos >= 0 else 0
        if runs and key <= prev + 1:
            runs[-1][1].append(t)  # no keyframe past the next frame: keep decoding forward
        else:
            runs.append((key, [t]))
        prev = t
    return runs


def configure(stream: av.VideoStream, threads: int) -> None:
    """Decoder threading; must happen before the first decode opens the codec."""
    ctx = stream.codec_context
    ctx.thread_type = "AUTO" if threads != 1 else "SLICE"
    ctx.thread_count = max(0, threads)


def decode_targets(container: av.container.InputContainer, stream: av.VideoStream,
                   index: FrameIndex, targets: np.ndarray, emit: Emit,
                   skip_nonref: bool = True) -> DecodeStats:
    """Call ``emit(i, frame)`` once for each target presentation index ``i``."""
    stats = DecodeStats()
    if not index.exact:
        _sequential(container, stream, set(int(t) for t in targets), emit, stats)
        return stats
    skip = skip_nonref and stream.codec_context.name in NONREF_SAFE
    wanted = {int(index.pts[t]): int(t) for t in targets}
    done: set[int] = set()
    for key, run in plan_runs(index, targets):
        _seek(container, stream, int(index.pts[key]))
        stats.seeks += 1
        run_pts = {int(index.pts[t]) for t in run}
        _decode_run(container, stream, run_pts, wanted, done, emit, stats, skip)
    missing = [t for t in wanted.values() if t not in done]
    if missing:  # the index and the decoder disagree (odd seeking): decode from the start
        _seek(container, stream, int(index.pts[0]))
        stats.seeks += 1
        pts = {p for p, t in wanted.items() if t not in done}
        _decode_run(container, stream, pts, wanted, done, emit, stats, skip=False)
        missing = sorted(t for t in wanted.values() if t not in done)
    if missing:
        raise VideoError(f"decode failed: frame {missing[0]} could not be decoded "
                         f"({len(missing)} of {len(wanted)} frames missing)")
    return stats


def _seek(container: av.container.InputContainer, stream: av.VideoStream, ts: int) -> None:
    try:
        container.seek(ts, stream=stream, backward=True, any_frame=False)
    except av.FFmpegError as e:
        raise VideoError(f"seek failed: {av_reason(e)}") from None
    stream.codec_context.flush_buffers()


def _decode_run(container: av.container.InputContainer, stream: av.VideoStream,
                run_pts: set[int], wanted: dict[int, int], done: set[int], emit: Emit,
                stats: DecodeStats, skip: bool) -> None:
    ctx = stream.codec_context
    pending = set(run_pts)

    def take(frame: av.VideoFrame) -> None:
        stats.decoded += 1
        t = wanted.get(frame.pts)  # type: ignore[arg-type]
        if t is not None and t not in done:
            done.add(t)
            emit(t, frame)

    mode = "DEFAULT"
    try:
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            if skip and (want := "DEFAULT" if packet.pts in wanted else "NONREF") != mode:
                ctx.skip_frame = mode = want
            for frame in ctx.decode(packet):
                take(frame)
            pending.discard(packet.pts)  # type: ignore[arg-type]
            if not pending:
                break
        ctx.skip_frame = "DEFAULT"
        for frame in ctx.decode(None):
            take(frame)
    except av.FFmpegError as e:
        raise VideoError(f"decode failed: {av_reason(e)}") from None
    finally:
        ctx.skip_frame = "DEFAULT"


def _sequential(container: av.container.InputContainer, stream: av.VideoStream,
                targets: set[int], emit: Emit, stats: DecodeStats) -> None:
    """No usable timestamps: decode from the start and count frames in output order."""
    last = max(targets)
    try:
        container.seek(0, stream=stream)
    except av.FFmpegError:
        pass
    try:
        for n, frame in enumerate(container.decode(stream)):
            stats.decoded += 1
            if n in targets:
                emit(n, frame)
            if n >= last:
                return
    except av.FFmpegError as e:
        raise VideoError(f"decode failed: {av_reason(e)}") from None
    raise VideoError(f"decode failed: the video ended before frame {last}")
