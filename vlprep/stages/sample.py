"""Sparse frame sampling: pick frame indices, decode only those, resize and centre crop.

Adds to each record a :class:`SampledFrames` under the option ``key`` (default ``frames``):
uint8 N x S x S x 3 RGB frames, their int64 indices and float32 times (index / average fps).
Emits no rows: the frames are the input of the model stages.

Resizing uses torch's bilinear interpolation with ``antialias=True`` on uint8 tensors: it
matches PIL's bilinear resize to within 1 grey level, works on the whole batch of frames at
once, and is the same kernel torchvision's ``Resize`` uses.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F
from pydantic import Field, model_validator

from vlprep.stages.base import Record, Resources, Stage, StageOptions, VideoError
from vlprep.stages.decode import open_video
from vlprep.stages.frames import SampledFrames
from vlprep.stages.samplers import sample_indices


class SampleOptions(StageOptions):
    sampler: Literal["uniform"] = "uniform"
    num_frames: int = Field(default=8, gt=0)
    size: int = Field(default=224, gt=0, description="shorter side after resizing")
    crop: int | None = Field(default=None, gt=0, description="centre crop side (default: size)")
    decoder: Literal["decord", "pyav"] = "decord"
    key: str = Field(default="frames", description="record key the frames are stored under")

    @model_validator(mode="after")
    def _crop_fits(self) -> SampleOptions:
        if self.crop is not None and self.crop > self.size:
            raise ValueError(f"crop ({self.crop}) cannot exceed size ({self.size})")
        return self


def resize_center_crop(frames: np.ndarray, size: int, crop: int | None = None) -> np.ndarray:
    """Resize N x H x W x 3 uint8 frames so the shorter side is `size` (the longer side keeps
    the aspect ratio, rounded down as torchvision does), then take the centre crop x crop."""
    crop = size if crop is None else crop
    n, h, w, _ = frames.shape
    if h <= w:
        new_h, new_w = size, max(size, w * size // h)
    else:
        new_h, new_w = max(size, h * size // w), size
    x = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    if (new_h, new_w) != (h, w):
        x = F.interpolate(x, size=(new_h, new_w), mode="bilinear", antialias=True,
                          align_corners=False)
    top, left = (new_h - crop) // 2, (new_w - crop) // 2
    x = x[:, :, top:top + crop, left:left + crop]
    return np.ascontiguousarray(x.permute(0, 2, 3, 1).numpy())


class SampleStage(Stage):
    """Decode N sampled frames per video on CPU; cheap to build, so it is stateless."""

    kind = "sample"
    Options = SampleOptions
    stateful = False
    tables = ()
    default_resources = Resources(num_cpus=1.0, batch_size=4)

    def process(self, record: Record) -> None:
        opts: SampleOptions = self.options  # type: ignore[assignment]
        source = open_video(record["path"], opts.decoder)
        if source.frame_count <= 0:
            raise VideoError("the video has no frames")
        indices = sample_indices(opts.sampler, source.frame_count, opts.num_frames)
        frames = source.read(indices)
        fps = source.fps or float((record.get("probe") or {}).get("fps") or 0.0)
        times = indices / fps if fps > 0 else np.zeros(len(indices))
        record[opts.key] = SampledFrames(
            frames=resize_center_crop(frames, opts.size, opts.crop),
            indices=indices.astype(np.int64), times=times.astype(np.float32),
            sampler=opts.sampler)
