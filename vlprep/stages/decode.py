"""Decoding entry points shared by the probe and sample stages.

Stages call :func:`probe` and :func:`sample`, which run the job in this process or, by
default, in the killable decode worker (:mod:`vlprep.stages.decoders.isolation`) with the
caps, timeout and memory limit of :class:`DecodeLimits`. :func:`decode_frames` returns whole
decoded frames for tests and debugging. Decoders: ``pyav`` (exact, seeks per GOP, skips
unreferenced frames; the default), ``decord`` (``get_batch``) and ``ffmpeg`` (the CLI).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
from pydantic import Field

from vlprep.stages.base import Record, StageOptions, VideoError
from vlprep.stages.decoders.job import (
    ProbeRequest,
    SampleRequest,
    SampleResult,
    in_process,
    run_probe,
)
from vlprep.stages.decoders.media import Caps, av_reason
from vlprep.stages.media_io import local_path

Decoder = Literal["pyav", "decord", "ffmpeg"]
DECODERS: tuple[str, ...] = ("pyav", "decord", "ffmpeg")


class DecodeLimits(StageOptions):
    """Caps and isolation settings, the same keys in the probe and sample stages."""

    speed_only = frozenset({"timeout"})

    max_file_bytes: int | None = Field(default=None, gt=0,
                                       description="bigger files fail instead of being decoded")
    max_pixels: int | None = Field(default=None, gt=0, description="cap on width x height")
    max_duration: float | None = Field(default=None, gt=0, description="cap in seconds")
    isolate: bool = Field(default=True, description="decode in a killable child process")
    timeout: float | None = Field(default=300.0, gt=0,
                                  description="seconds per video before the child is killed")
    memory_limit_mb: int | None = Field(default=4096, gt=0,
                                        description="address-space cap of the child process")

    def caps(self) -> Caps:
        return Caps(self.max_file_bytes, self.max_pixels, self.max_duration)


def probe(path: str, limits: DecodeLimits, count_frames: str = "auto") -> dict[str, Any]:
    """Probe facts of `path` (a local path or any URI :func:`local_path` fetches)."""
    path = local_path(path, limits.max_file_bytes)
    request = ProbeRequest(path, limits.caps(), count_frames)
    if not limits.isolate:
        return run_probe(request)
    from vlprep.stages.decoders.isolation import worker_for

    return worker_for(limits.memory_limit_mb).probe(request, limits.timeout)


def sample(request: SampleRequest, limits: DecodeLimits) -> SampleResult:
    """Run a sample request (its path may be a URI, fetched once per worker process)."""
    request = replace(request, path=local_path(request.path, limits.max_file_bytes))
    if not limits.isolate:
        return in_process(request)
    from vlprep.stages.decoders.isolation import worker_for

    return worker_for(limits.memory_limit_mb).sample(request, limits.timeout)


def plan_dense(request: SampleRequest, limits: DecodeLimits) -> SampleResult:
    """A videoclip sample without its frames (they are read later with :func:`read_chunk`)."""
    request = replace(request, path=local_path(request.path, limits.max_file_bytes))
    if not limits.isolate:
        from vlprep.stages.decoders.stream import plan_dense as plan_here

        return plan_here(request)
    from vlprep.stages.decoders.isolation import worker_for

    return worker_for(limits.memory_limit_mb).plan(request, limits.timeout)


def read_chunk(request: SampleRequest, start: int, count: int,
               limits: DecodeLimits) -> np.ndarray:
    """Slots ``start .. start + count`` of a videoclip sample (uint8 count x crop x crop x 3),
    decoded here or in the decode worker, continuing the previous chunk's decode."""
    request = replace(request, path=local_path(request.path, limits.max_file_bytes))
    if not limits.isolate:
        from vlprep.stages.decoders.stream import read_chunk as read_here

        def allocate(shape: tuple[int, ...]) -> np.ndarray:
            return np.empty(shape, np.uint8)

        return read_here(request, start, count, allocate)
    from vlprep.stages.decoders.isolation import worker_for

    return worker_for(limits.memory_limit_mb).chunk(request, start, count, limits.timeout)


@dataclass
class DenseSource:
    """Where streamed videoclip frames come from: the request (its path as the manifest gave
    it, so another process fetches a URI itself) and the decode limits. Small and picklable:
    it travels in the record instead of the frames."""

    request: SampleRequest
    limits: DecodeLimits
    length: int  # slots, padding included

    def read(self, start: int, count: int) -> np.ndarray:
        return read_chunk(self.request, start, count, self.limits)


class BatchMemo:
    """Per-record results of the current batch, for the runner's retry.

    When one video of a batch fails, the runner restores every record and calls the stage on
    each one alone. Without a memo that decodes every good video twice and waits out a hung
    video's timeout twice; with it the retry replays each record's result (or error).
    Records are keyed by identity: the runner restores them in place.
    """

    def __init__(self) -> None:
        self._results: dict[int, tuple[bool, Any]] = {}

    def run(self, batch: list[Record], compute: Callable[[Record], Any],
            apply: Callable[[Record, Any], None]) -> list[Record]:
        live = {id(r) for r in batch}
        self._results = {k: v for k, v in self._results.items() if k in live}
        for record in batch:
            if id(record) not in self._results:
                try:
                    self._results[id(record)] = (True, compute(record))
                except VideoError as e:
                    self._results[id(record)] = (False, e)
        for record in batch:
            ok, value = self._results[id(record)]
            if not ok:
                raise value
        for record in batch:
            apply(record, self._results.pop(id(record))[1])
        return batch


def decode_frames(path: str, indices: Sequence[int] | np.ndarray,
                  decoder: Decoder = "pyav") -> np.ndarray:
    """Whole frames at presentation `indices` (repeats allowed), RGB uint8 N x H x W x 3 in the
    stored orientation, decoded in this process (no resizing, no isolation)."""
    import av

    from vlprep.stages.decoders import decord_backend, ffmpeg_backend, pyav_backend
    from vlprep.stages.decoders.media import (
        build_index,
        check_input,
        first_frame,
        open_container,
        rotation_of,
    )
    from vlprep.stages.decoders.media import video_stream as first_video

    indices = np.asarray(indices, dtype=np.int64)
    if indices.size == 0:
        raise ValueError("no frame indices to decode")
    path = local_path(path)
    check_input(path, Caps())
    got: dict[int, np.ndarray] = {}

    def keep(i: int, frame: Any) -> None:
        got[i] = frame.to_ndarray(format="rgb24") if isinstance(frame, av.VideoFrame) \
            else np.array(frame)

    with open_container(path) as container:
        stream = first_video(container)
        index = build_index(container, stream)
        if indices.min() < 0 or indices.max() >= len(index):
            raise VideoError(f"frame index out of range (the video has {len(index)} frames)")
        targets = np.unique(indices)
        if decoder == "pyav":
            pyav_backend.decode_targets(container, stream, index, targets, keep)
        elif decoder == "decord":
            rotation = rotation_of(first_frame(container, stream))
            decord_backend.decode_targets(path, index, targets, keep, rotation=rotation)
        elif decoder == "ffmpeg":
            ctx = stream.codec_context
            ffmpeg_backend.decode_targets(path, index, targets, ctx.width, ctx.height, keep)
        else:
            raise ValueError(f"unknown decoder {decoder!r} (known: {', '.join(DECODERS)})")
    return np.stack([got[int(i)] for i in indices])


__all__ = ["DECODERS", "BatchMemo", "DecodeLimits", "Decoder", "DenseSource", "SampleRequest",
           "SampleResult", "av_reason", "decode_frames", "plan_dense", "probe", "read_chunk",
           "sample"]
