"""VideoCLIP S3D features: one `s3d` row per video, one 512-d vector per second.

Reads the frames of the VideoCLIP sampler (30 fps, 1-s windows of 30 frames, the last one
zero-padded) and runs the HowTo100M S3D-G on every window, ``frame_batch`` windows per
forward pass. Unlike the other backbones it takes each video's frames piece by piece rather
than the batch's frames at once: streamed frames (the sampler's default, see
:mod:`vlprep.stages.frames`) are decoded 16 windows at a time, the next piece while the model
runs on this one, so memory is flat in the video's length (decoding then happens in this
stage's process). Stored fp16, L2-normalised by default as VideoCLIP's extractor does; with
``mixed_5c: true`` the 1024-d pooled block output is stored too.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
from pydantic import Field, model_validator

from vlprep.columns import list_of_vectors
from vlprep.schemas import S3D
from vlprep.stages.backbone import BackboneOptions, BackboneStage, Encoder, Runtime, table_of
from vlprep.stages.base import Record, Resources, VideoError
from vlprep.stages.frames import SampledFrames, get_frames
from vlprep.stages.record import emit

CHUNK_WINDOWS = 16  # windows decoded and embedded at a time (16 s: 72 MB of frames at 224)


class S3dOptions(BackboneOptions):
    speed_only = frozenset({"frame_batch"})

    window: int = Field(default=30, gt=1, description="frames per clip (VideoCLIP: 30 = 1 s)")
    fps: float = Field(default=30.0, gt=0, description="frame rate of the sampled frames")
    normalize: bool = Field(default=True, description="L2-normalise the 512-d features")
    mixed_5c: bool = Field(default=False, description="also store the 1024-d mixed_5c")
    frame_batch: int = Field(default=8, gt=0, description="windows per forward pass")

    @model_validator(mode="after")
    def _weights(self) -> S3dOptions:
        if self.window % 2:
            raise ValueError("window must be even (S3D halves time in its first layer)")
        self.check_weights("file")
        return self


class S3dStage(BackboneStage[S3dOptions], kind="s3d", table="s3d",
               resources=Resources(num_cpus=1.0, batch_size=2, concurrency=1)):
    """Adds nothing to the record; emits the `s3d` row of each video."""

    def load(self) -> Runtime:
        from vlprep.models.s3d import S3D as S3dModel
        from vlprep.models.s3d import embed_windows, random_s3d

        opts = self.options
        model = (random_s3d(opts.seed) if opts.init == "random"
                 else S3dModel.from_checkpoint(opts.checkpoint_path)).to(self.device)
        return Encoder("torch", lambda frames: embed_windows(
            model, frames, opts.window, self.device, opts.frame_batch, opts.precision), model)

    def __call__(self, batch: list[Record]) -> list[Record]:
        """Each video's windows in pieces of ``CHUNK_WINDOWS`` (at least ``frame_batch``)."""
        self.setup()
        assert self.model is not None
        opts = self.options
        sampled = [get_frames(record, opts.frames) for record in batch]
        for s in sampled:
            self.units(s, None)  # every video checked before any decoding
        per_chunk = opts.window * max(CHUNK_WINDOWS, opts.frame_batch)
        for record, s in zip(batch, sampled, strict=True):
            parts = [self.model(chunk) for chunk in s.chunks(per_chunk)]
            outputs = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
            emit(record, self.tables[0], self.rows(record, s, outputs, None))
        return batch

    def units(self, sampled: SampledFrames, inputs: Any) -> int:
        """Windows of the video: its frames must come in whole windows of ``window``."""
        window = self.options.window
        given = int(sampled.window or 0)
        if given and given != window:
            raise VideoError(f"frames come in {given}-frame windows but the s3d stage takes "
                             f"window: {window}")
        if len(sampled) % window:
            raise VideoError(f"{len(sampled)} frames is not a whole number of {window}-frame "
                             "windows (use the videoclip sampler)")
        return len(sampled) // window

    def rows(self, record: Record, sampled: SampledFrames, outputs: dict[str, np.ndarray],
             extra: Any = None) -> pa.Table:
        opts = self.options
        emb = outputs["video_embedding"]
        n = len(emb)
        if opts.normalize:
            emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
        if sampled.window_starts is not None and len(sampled.window_starts) == n:
            starts = np.asarray(sampled.window_starts, np.float32)
        else:
            starts = np.asarray(sampled.times, np.float32)[::opts.window][:n]
        ends = starts + np.float32(opts.window / opts.fps)
        mixed = (list_of_vectors(outputs["mixed_5c"].astype(np.float16), [0, n], 1024,
                                 pa.float16())
                 if opts.mixed_5c else pa.nulls(1, S3D.field("mixed_5c").type))
        return table_of(S3D, {
            "video_id": pa.array([record["video_id"]], pa.string()),
            "num_windows": pa.array([n], pa.int32()),
            "window_start": pa.array([starts], pa.list_(pa.float32())),
            "window_end": pa.array([ends], pa.list_(pa.float32())),
            "features": list_of_vectors(emb.astype(np.float16), [0, n], 512, pa.float16()),
            "mixed_5c": mixed,
        })
