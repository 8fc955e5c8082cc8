"""Sampled frames as they pass from a sampling stage to the model stages.

A job may sample the same video several ways (8 uniform frames for CLIP, 30 fps windows for
S3D, 12 frames for the detector); each sample stage stores its result under its own record key
(option ``key``) and each model stage names the key it reads (option ``frames``).
"""

from __future__ import annotations

from dataclasses import dataclass

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


def get_frames(record: Record, key: str) -> SampledFrames:
    """The frames a sample stage left under `key`; a readable error when there are none."""
    sampled = record.get(key)
    if not isinstance(sampled, SampledFrames) or len(sampled) == 0:
        raise VideoError(f"no sampled frames under {key!r} (is a sample stage with "
                         f"key: {key} before this one?)")
    return sampled
