"""Which frames to take from a video: pure index math, no decoding, so it is easy to test.

Every sampler maps (frame_count, num_frames) to sorted int64 frame indices. A video shorter
than `num_frames` gets repeated indices rather than an error, so every video yields the same
number of frames and downstream tensors stay rectangular.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def uniform_indices(frame_count: int, num_frames: int) -> np.ndarray:
    """Segment midpoints: split [0, frame_count) into `num_frames` equal segments and take the
    integer midpoint of each, floor((2i + 1) * F / 2N).

    Exact integer arithmetic, so the result never depends on float rounding. (ALPRO's public
    code takes segment *starts* via ``np.arange(0, F, F / N, dtype=int)``; midpoints are the
    centred variant used by most evaluation code and avoid always picking frame 0.)
    """
    if frame_count <= 0:
        raise ValueError(f"frame_count must be positive, got {frame_count}")
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")
    i = np.arange(num_frames, dtype=np.int64)
    return (2 * i + 1) * frame_count // (2 * num_frames)


SAMPLERS: dict[str, Callable[[int, int], np.ndarray]] = {"uniform": uniform_indices}


def sample_indices(sampler: str, frame_count: int, num_frames: int) -> np.ndarray:
    """Frame indices chosen by the named sampler."""
    try:
        fn = SAMPLERS[sampler]
    except KeyError:
        raise ValueError(f"unknown sampler {sampler!r} (known: {', '.join(SAMPLERS)})") from None
    return fn(frame_count, num_frames)
