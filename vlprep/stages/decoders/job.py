"""One probe or sample request, from a path to facts or frames: the unit of isolation.

Both run the same way in-process and in the worker child; only where the frames are written
differs (``allocate`` returns a numpy array or a view of a shared-memory file).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from fractions import Fraction
from typing import Any

import av
import numpy as np

from vlprep.stages.base import VideoError
from vlprep.stages.decoders import decord_backend, ffmpeg_backend, pyav_backend
from vlprep.stages.decoders.dense import DenseReader
from vlprep.stages.decoders.geometry import FrameWriter, Geometry
from vlprep.stages.decoders.media import (
    Caps,
    FrameIndex,
    av_reason,
    build_index,
    check_caps,
    check_complete,
    check_input,
    first_frame,
    open_container,
    probe_facts,
    rotation_of,
    video_stream,
)
from vlprep.stages.resample import fps_slots, last_frame_duration, windows
from vlprep.stages.samplers import pick_frames, snap_to_keyframes

Allocate = Callable[[tuple[int, ...]], np.ndarray]
BACKEND_OPEN_ERRORS: dict[str, Callable[[str], str | None]] = {
    "decord": decord_backend.open_error, "ffmpeg": ffmpeg_backend.open_error}


@dataclass(frozen=True)
class ProbeRequest:
    path: str
    caps: Caps = Caps()
    count_frames: str = "auto"  # auto | always | never


@dataclass(frozen=True)
class SampleRequest:
    path: str
    video_id: str = ""
    sampler: str = "uniform"  # a sparse sampler (samplers.SPARSE) or "videoclip"
    num_frames: int = 8
    seed: int = 0
    fps: float = 30.0  # output rate of the videoclip sampler
    window: int = 30  # frames per window of the videoclip sampler
    size: int = 224
    crop: int | None = None  # default: size
    resize: str = "short_side"  # short_side | squash (see geometry.Geometry)
    decoder: str = "pyav"
    snap: str = "exact"  # exact | keyframe
    threads: int = 0
    skip_nonref: bool = True
    rotation: int | None = None  # known from the probe; else read from the video
    caps: Caps = Caps()
    fallback: bool = True  # decord/ffmpeg cannot read it: decode with PyAV instead


@dataclass
class SampleResult:
    frames: np.ndarray | None  # N x crop x crop x 3 (None when it went through shared memory)
    indices: np.ndarray  # int64: presentation index per frame, -1 for padding
    times: np.ndarray  # float64 seconds (pts_time), NaN for padding
    valid: np.ndarray  # bool: False for zero padding
    snapped: np.ndarray  # bool: moved to a keyframe
    window_starts: np.ndarray | None
    fps: float
    rotation: int
    frame_count: int
    stats: dict[str, Any] = field(default_factory=dict)
    decoder: str = ""  # the backend that decoded the frames
    fallback_reason: str | None = None  # why the chosen one did not (then decoder is pyav)


class BackendError(VideoError):
    """The chosen backend (decord, ffmpeg) failed on a file PyAV's demuxer reads: the frame
    index exists, so PyAV can decode the same frames instead."""


def run_probe(req: ProbeRequest) -> dict[str, Any]:
    """Probe facts of one input (see :func:`media.probe_facts`) plus rotation and a verified
    frame count; raises VideoError for unreadable, undecodable or capped inputs."""
    size = check_input(req.path, req.caps)
    with open_container(req.path) as container:
        stream = video_stream(container)
        facts = probe_facts(container, stream, size)
        check_caps(facts, req.caps)
        check_complete(stream, size)
        facts["rotation"] = rotation_of(first_frame(container, stream))
        expected = facts["duration"] * facts["fps"]
        stored = facts["frame_count"]
        doubtful = stored <= 0 or abs(stored - expected) > max(2.0, 0.02 * expected)
        facts["frame_count_source"] = "container"
        if req.count_frames == "always" or (req.count_frames == "auto" and doubtful):
            try:
                container.seek(0, stream=stream)
            except av.FFmpegError as e:
                raise VideoError(f"cannot count frames: {av_reason(e)}") from None
            facts["frame_count"] = len(build_index(container, stream))
            facts["frame_count_source"] = "demux"
        elif stored <= 0:
            facts["frame_count"] = round(expected)
            facts["frame_count_source"] = "estimate"
    return facts


def run_sample(req: SampleRequest, allocate: Allocate) -> SampleResult:
    """Pick, decode, resize and crop the frames of one video into ``allocate(shape)``.

    Every backend decodes the targets the plan picks from PyAV's demux index, so the frames
    are numbered the same whichever decodes them. When the chosen backend (decord, ffmpeg)
    cannot open or decode the file, PyAV decodes it instead (``fallback``, the default) and
    the result says so; when none can, the error gives each backend's reason. File-level
    problems (missing, over the caps) are no backend's and are raised as they are.
    """
    if req.decoder == "pyav" or not req.fallback:
        result = _sample_with(req, allocate)
        result.decoder = req.decoder
        return result
    check_input(req.path, req.caps)
    once = _allocate_once(allocate)
    try:
        result = _sample_with(req, once)
        result.decoder = req.decoder
        return result
    except BackendError as e:
        chosen = str(e)
    except VideoError as e:
        if e.code in ("missing", "over_caps", "timeout"):
            raise
        own = BACKEND_OPEN_ERRORS[req.decoder](req.path) or \
            "opens it, but frames are numbered from PyAV's demux, which fails"
        raise VideoError(f"{_named(req.decoder, own)}; pyav: {e}", e.code) from None
    try:
        result = _sample_with(replace(req, decoder="pyav"), once)
    except VideoError as e:
        raise VideoError(f"{_named(req.decoder, chosen)}; pyav: {e}", e.code) from None
    result.decoder, result.fallback_reason = "pyav", chosen
    return result


def _named(decoder: str, reason: str) -> str:
    return reason if reason.startswith(decoder) else f"{decoder}: {reason}"


def _allocate_once(allocate: Allocate) -> Allocate:
    """The same output buffer for a retry (the plan, hence the shape, does not change)."""
    buffers: dict[tuple[int, ...], np.ndarray] = {}

    def once(shape: tuple[int, ...]) -> np.ndarray:
        if shape not in buffers:
            buffers[shape] = allocate(shape)
        return buffers[shape]

    return once


@dataclass
class Opened:
    """A video opened for sampling: what every decode path needs before decoding."""

    stream: av.VideoStream
    facts: dict[str, Any]
    index: FrameIndex
    rotation: int | None  # None: read from the first frame the PyAV paths decode
    plan: _Plan

    @property
    def source(self) -> np.ndarray:
        """The source frame of every non-padding slot, in slot order."""
        return self.plan.indices[self.plan.valid]


def open_sample(req: SampleRequest, container: av.container.InputContainer,
                file_size: int | None) -> Opened:
    """Checks (caps, truncation), the frame index and the plan of which frames go where."""
    stream = video_stream(container)
    if req.decoder == "pyav":
        pyav_backend.configure(stream, req.threads)
    facts = probe_facts(container, stream, file_size)
    check_caps(facts, req.caps)
    check_complete(stream, file_size)
    index = build_index(container, stream)
    rotation = req.rotation
    if rotation is None and req.decoder != "pyav":
        rotation = rotation_of(first_frame(container, stream))
    return Opened(stream, facts, index, rotation,
                  _plan(req, index, facts["fps"], stream.average_rate))


def geometry_of(req: SampleRequest, rotation: int | None) -> Geometry:
    return Geometry(req.size, req.crop or req.size, rotation, req.resize == "squash")


def _sample_with(req: SampleRequest, allocate: Allocate) -> SampleResult:
    """:func:`run_sample` with exactly the decoder the request names."""
    size = check_input(req.path, req.caps)
    with open_container(req.path) as container:
        o = open_sample(req, container, size)
        plan, index, stream = o.plan, o.index, o.stream
        crop = req.crop or req.size
        out = allocate((len(plan.indices), crop, crop, 3))
        geometry = geometry_of(req, o.rotation)
        if dense_in_order(req):
            reader = DenseReader(container, stream, index, o.source, geometry)
            reader.fill(0, out)
            geometry = reader.geometry
            stats: dict[str, Any] = {"decoded": reader.decoded, "seeks": reader.seeks}
            targets = np.unique(o.source)
        else:
            writer = FrameWriter(geometry, out)
            positions: dict[int, list[int]] = {}
            for pos, t in enumerate(plan.indices):
                if t >= 0:
                    positions.setdefault(int(t), []).append(pos)
            targets = np.asarray(sorted(positions), dtype=np.int64)
            stats = _decode(req, container, stream, index, targets, o.facts, o.rotation,
                            lambda t, frame: writer.put(positions[t], frame))
            out[~plan.valid] = 0
            geometry = writer.geometry
    stats.update(targets=len(targets), returned=int(plan.valid.sum()))
    return result_of(o, geometry.rotation or 0, stats)


def dense_in_order(req: SampleRequest) -> bool:
    """Whether the request goes through the dense front-to-back path (videoclip on PyAV)."""
    return req.sampler == "videoclip" and req.decoder == "pyav"


def result_of(o: Opened, rotation: int, stats: dict[str, Any]) -> SampleResult:
    """The result of a sample (frames set by the caller)."""
    plan = o.plan
    valid = plan.valid
    times = np.full(len(plan.indices), np.nan)
    times[valid] = o.index.times(plan.indices[valid])
    return SampleResult(None, plan.indices, times, valid, plan.snapped, plan.window_starts,
                        o.facts["fps"], rotation, len(o.index), stats)


@dataclass
class _Plan:
    indices: np.ndarray
    valid: np.ndarray
    snapped: np.ndarray
    window_starts: np.ndarray | None = None


def _plan(req: SampleRequest, index: FrameIndex, fps: float,
          avg_rate: Fraction | None) -> _Plan:
    if req.sampler != "videoclip":
        pick = pick_frames(req.sampler, len(index), req.num_frames, fps, req.video_id, req.seed)
        indices, snapped = pick.indices, np.zeros(len(pick.indices), bool)
        if req.snap == "keyframe" and index.exact:
            indices, snapped = snap_to_keyframes(pick, index.keyframes)
        return _Plan(indices, np.ones(len(indices), bool), snapped)
    rate = Fraction(req.fps).limit_denominator(1001)
    end = int(index.pts[-1]) + last_frame_duration(index.pts, index.durations, avg_rate,
                                                   index.time_base)
    slots = fps_slots(index.pts, index.time_base, end, rate, offset=index.container_start)
    count, pad = windows(len(slots.source), req.window)
    indices = np.r_[slots.source, np.full(pad, -1, np.int64)]
    valid = np.r_[np.ones(len(slots.source), bool), np.zeros(pad, bool)]
    shift = float(index.container_start * index.time_base)
    starts = (slots.first_slot + np.arange(count) * req.window) / float(rate) + shift
    return _Plan(indices, valid, np.zeros(len(indices), bool), starts)


def _decode(req: SampleRequest, container: av.container.InputContainer, stream: av.VideoStream,
            index: FrameIndex, targets: np.ndarray, facts: dict[str, Any],
            rotation: int | None, emit: Callable[[int, Any], None]) -> dict[str, Any]:
    if req.decoder == "pyav":
        s = pyav_backend.decode_targets(container, stream, index, targets, emit,
                                        skip_nonref=req.skip_nonref)
        return {"decoded": s.decoded, "seeks": s.seeks}
    try:
        if req.decoder == "decord":
            decord_backend.decode_targets(req.path, index, targets, emit, req.threads,
                                          rotation=rotation or 0)
            return {"decoded": None, "seeks": None}
        if req.decoder == "ffmpeg":
            ffmpeg_backend.decode_targets(req.path, index, targets, facts["width"],
                                          facts["height"], emit, req.threads)
            return {"decoded": int(targets[-1]) + 1, "seeks": 0}
    except BackendError:
        raise
    except VideoError as e:
        raise BackendError(str(e), e.code) from None
    raise ValueError(f"unknown decoder {req.decoder!r} (known: pyav, decord, ffmpeg)")


def in_process(req: SampleRequest) -> SampleResult:
    """Run a sample request here (no isolation): frames land in a fresh array."""
    holder: list[np.ndarray] = []

    def allocate(shape: tuple[int, ...]) -> np.ndarray:
        holder.append(np.empty(shape, np.uint8))
        return holder[0]

    result = run_sample(req, allocate)
    result.frames = holder[0]
    return result


__all__ = ["BackendError", "ProbeRequest", "SampleRequest", "SampleResult", "in_process",
           "run_probe", "run_sample"]
