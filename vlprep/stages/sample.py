"""Frame sampling for the three methods: pick frames, decode exactly those, resize and crop.

Adds to each record a :class:`SampledFrames` under the option ``key`` (default ``frames``):
uint8 N x crop x crop x 3 RGB frames with each frame's presentation index and time (its pts,
as ffprobe reports it). Emits no rows: the frames are the input of the model stages.

Samplers (``sampler``; index math in :mod:`vlprep.stages.samplers`):

| sampler | method | frames |
|---|---|---|
| ``uniform`` | ALPRO evaluation | 8: ``i * floor(F / N)``, as ALPRO's code computes them |
| ``headtail`` | ALPRO pretraining | 4: N/2 random frames from each half |
| ``rand`` | ALPRO-style training | 8: one random frame per equal segment |
| ``middle`` | - | 8: segment midpoints |
| ``stoa`` | STOA-VLP | 12: evenly over the first frame of every second |
| ``videoclip`` | VideoCLIP | all: ffmpeg ``fps=30`` resampling, 30-frame windows |

Frames are resized with the shorter side to ``size`` (``resize: short_side``) or squashed to
``size`` x ``size`` (``resize: squash``: ALPRO's decord reads with fixed width and height),
then centre-cropped to ``crop``. Random samplers are seeded by (video_id, ``seed``).
``snap: keyframe`` moves each target to a keyframe in its segment (approximate, much faster).
Decoding runs in the decode worker with the caps, timeout and memory limit of
:class:`vlprep.stages.decode.DecodeLimits`.
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field, model_validator

from vlprep.stages.base import Contract, Record, Resources, Stage
from vlprep.stages.decode import (
    BatchMemo,
    DecodeLimits,
    DenseSource,
    SampleRequest,
    plan_dense,
    sample,
)
from vlprep.stages.decoders.job import dense_in_order
from vlprep.stages.decoders.stream import chunk_request
from vlprep.stages.frames import SampledFrames, StreamedFrames
from vlprep.stages.record import note

DEFAULT_FRAMES = {"uniform": 8, "middle": 8, "rand": 8, "headtail": 4, "stoa": 12}


class SampleOptions(DecodeLimits):
    speed_only = frozenset({"threads", "stream"})

    sampler: Literal["uniform", "middle", "headtail", "rand", "stoa", "videoclip"] = "uniform"
    num_frames: int | None = Field(default=None, gt=0,
                                   description="frames per video (default: the sampler's)")
    seed: int = Field(default=0, description="random samplers draw from (video_id, seed)")
    fps: float = Field(default=30.0, gt=0, description="videoclip: output frame rate")
    window: int = Field(default=30, gt=0, description="videoclip: frames per window")
    size: int = Field(default=224, gt=0, description="shorter side after resizing (squash: "
                                                     "both sides)")
    resize: Literal["short_side", "squash"] = Field(
        default="short_side", description="short_side: keep the aspect, shorter side to size; "
        "squash: width and height to size, as ALPRO's decord reads")
    crop: int | None = Field(default=None, gt=0, description="centre crop side (default: size)")
    decoder: Literal["pyav", "decord", "ffmpeg"] = "pyav"
    fallback: bool = Field(default=True, description="decode with PyAV when the chosen "
                           "decoder cannot open or decode a file (false: fail instead)")
    snap: Literal["exact", "keyframe"] = "exact"
    threads: int | None = Field(default=None, ge=0, description="decoder threads per video "
                                "(default: the stage's num_cpus; 0: FFmpeg decides)")
    key: str = Field(default="frames", description="record key the frames are stored under")
    stream: bool = Field(default=True, description="videoclip with pyav: leave the frames in "
                         "the video and decode them window by window when read (memory flat "
                         "in the video's length); false: decode them all here")

    @model_validator(mode="after")
    def _consistent(self) -> SampleOptions:
        if self.crop is not None and self.crop > self.size:
            raise ValueError(f"crop ({self.crop}) cannot exceed size ({self.size})")
        if self.sampler == "videoclip" and self.snap == "keyframe":
            raise ValueError("snap: keyframe applies to sparse samplers, not videoclip")
        if self.sampler == "videoclip" and self.num_frames is not None:
            raise ValueError("videoclip takes every frame at `fps`; num_frames does not apply")
        return self

    @property
    def frames_per_video(self) -> int:
        return self.num_frames or DEFAULT_FRAMES.get(self.sampler, 0)


class SampleStage(Stage[SampleOptions]):
    """Samples and decodes frames on CPU; stateless (the decode worker lives per process)."""

    kind = "sample"
    stateful = False
    tables = ()
    default_resources = Resources(num_cpus=1.0, batch_size=4)

    @classmethod
    def contract(cls, options: SampleOptions) -> Contract:
        # the probe's rotation, when a probe stage ran before
        return Contract(optional=("probe",), writes=(options.key,))

    def request(self, record: Record) -> SampleRequest:
        opts = self.options
        threads = opts.threads if opts.threads is not None else \
            max(1, round(self.resources.num_cpus))
        return SampleRequest(
            path=record["path"], video_id=str(record["video_id"]),
            sampler=opts.sampler,
            num_frames=opts.frames_per_video, seed=opts.seed, fps=opts.fps,
            window=opts.window, size=opts.size, crop=opts.crop or opts.size, resize=opts.resize,
            decoder=opts.decoder, fallback=opts.fallback, snap=opts.snap, threads=threads,
            rotation=(record.get("probe") or {}).get("rotation"), caps=opts.caps())

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.memo = BatchMemo()

    def __call__(self, batch: list[Record]) -> list[Record]:
        return self.memo.run(batch, self.compute, self.apply)

    def process(self, record: Record) -> None:
        self.apply(record, self.compute(record))

    def compute(self, record: Record) -> SampledFrames:
        opts = self.options
        request = self.request(record)
        dense = opts.sampler == "videoclip"
        if dense and opts.stream and dense_in_order(request):
            result = plan_dense(request, opts)  # checks the video, decodes one frame
            source = DenseSource(chunk_request(request, result), opts, len(result.indices))
            return StreamedFrames(source, **self.fields(result))
        result = sample(request, opts)
        return SampledFrames(frames=result.frames, **self.fields(result))

    def fields(self, result: Any) -> dict[str, Any]:
        """SampledFrames' fields but the frames."""
        opts = self.options
        dense = opts.sampler == "videoclip"
        return dict(
            indices=result.indices.astype(np.int64),
            times=result.times.astype(np.float32), sampler=opts.sampler,
            window_starts=None if result.window_starts is None
            else result.window_starts.astype(np.float32),
            valid=result.valid, snapped=result.snapped, window=opts.window if dense else 0,
            fps=result.fps, frame_count=result.frame_count, decoder=result.decoder,
            fallback=result.fallback_reason)

    def apply(self, record: Record, frames: SampledFrames) -> None:
        record[self.options.key] = frames
        if frames.fallback is not None:
            note(record, self.name, f"decoded with {frames.decoder}: {frames.fallback}")
