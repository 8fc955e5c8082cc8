"""Which frames to take from a video: pure index math, no decoding, so it is easy to test.

A sparse sampler maps (frame_count, num_frames, rng) to a :class:`Pick`: N frame indices in
presentation order plus, per index, the segment ``[lo, hi)`` it was drawn from (the frames the
sampler could equally have taken; ``snap: keyframe`` may move a target anywhere inside it).
Videos shorter than N frames get repeated indices, never an error, so tensors stay rectangular.

The methods' public code, which these follow (see README, Decoding and sampling):

- ``uniform``: ALPRO at evaluation, ``np.arange(0, F, F / N, dtype=int)``. NumPy's integer
  ``arange`` steps by ``int(F / N)``, so the indices are ``i * floor(F / N)`` (not
  ``floor(i * F / N)``); for N values like 7 it yields N + 1 indices and we keep the first N,
  and for F < N (where ALPRO returns frame 0 N times) we spread the N picks over the frames.
- ``middle``: segment midpoints ``floor((2i + 1) F / 2N)``, the centred variant.
- ``headtail``: ALPRO pretraining: N/2 distinct random frames from each half, each half sorted.
- ``rand``: one random frame per equal segment (ALPRO's ``nlvl_rand``; ALPRO's own ``rand`` is
  N distinct frames from the whole video, which leaves parts of the video unsampled).
- ``stoa``: STOA-VLP / CLIP4Clip: one frame per second (frame ``s * int(fps)``), then
  ``np.linspace(0, L - 1, N, dtype=int)`` of those (their ``slice_framepos 2``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

SPARSE = ("uniform", "middle", "headtail", "rand", "stoa")


@dataclass(frozen=True)
class Pick:
    indices: np.ndarray  # int64, N, sorted
    lo: np.ndarray  # int64, N: first frame of each pick's segment
    hi: np.ndarray  # int64, N: one past the last frame of each pick's segment


def video_rng(video_id: str, seed: int) -> np.random.Generator:
    """A generator that depends only on (video_id, seed): re-runs and other workers draw the
    same frames (Python's ``hash`` is salted per process, so it is not used)."""
    digest = hashlib.sha256(f"{seed}\x00{video_id}".encode()).digest()
    return np.random.Generator(np.random.PCG64(int.from_bytes(digest[:16], "little")))


def _check(frame_count: int, num_frames: int) -> None:
    if frame_count <= 0:
        raise ValueError(f"frame_count must be positive, got {frame_count}")
    if num_frames <= 0:
        raise ValueError(f"num_frames must be positive, got {num_frames}")


def _segments(frame_count: int, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """N equal segments [floor(iF/N), floor((i+1)F/N)), widened to one frame when empty."""
    i = np.arange(num_frames, dtype=np.int64)
    lo = np.minimum(i * frame_count // num_frames, frame_count - 1)
    hi = np.maximum((i + 1) * frame_count // num_frames, lo + 1)
    return lo, hi


def uniform_indices(frame_count: int, num_frames: int) -> np.ndarray:
    """ALPRO's evaluation frames: ``i * floor(F / N)`` (what its ``np.arange(..., dtype=int)``
    returns), or ``floor(i * F / N)`` when the video has fewer than N frames."""
    _check(frame_count, num_frames)
    i = np.arange(num_frames, dtype=np.int64)
    if frame_count < num_frames:
        return i * frame_count // num_frames
    return i * int(frame_count / num_frames)


def middle_indices(frame_count: int, num_frames: int) -> np.ndarray:
    """Segment midpoints, floor((2i + 1) F / 2N), in exact integer arithmetic."""
    _check(frame_count, num_frames)
    i = np.arange(num_frames, dtype=np.int64)
    return (2 * i + 1) * frame_count // (2 * num_frames)


def _draw(rng: np.random.Generator, lo: int, hi: int, k: int) -> np.ndarray:
    """k sorted frames from [lo, hi): distinct when the range allows, else with repeats."""
    n = hi - lo
    chosen = rng.choice(n, size=k, replace=k > n) if k else np.zeros(0, np.int64)
    return np.sort(chosen).astype(np.int64) + lo


def headtail_pick(frame_count: int, num_frames: int, rng: np.random.Generator) -> Pick:
    """N // 2 frames from the first half and N - N // 2 from the second (ALPRO draws N // 2
    from each; for even N, the only values it uses, the two agree)."""
    _check(frame_count, num_frames)
    half = max(1, frame_count // 2)
    tail_lo = min(half, frame_count - 1)
    k_head = num_frames // 2
    head = _draw(rng, 0, half, k_head)
    tail = _draw(rng, tail_lo, frame_count, num_frames - k_head)
    lo = np.r_[np.zeros(k_head, np.int64), np.full(num_frames - k_head, tail_lo, np.int64)]
    hi = np.r_[np.full(k_head, half, np.int64), np.full(num_frames - k_head, frame_count)]
    return Pick(np.r_[head, tail].astype(np.int64), lo, hi.astype(np.int64))


def rand_pick(frame_count: int, num_frames: int, rng: np.random.Generator) -> Pick:
    """One uniformly random frame inside each of N equal segments."""
    _check(frame_count, num_frames)
    lo, hi = _segments(frame_count, num_frames)
    offsets = np.floor(rng.random(num_frames) * (hi - lo)).astype(np.int64)
    return Pick(lo + offsets, lo, hi)


def stoa_indices(frame_count: int, num_frames: int, fps: float) -> np.ndarray:
    """STOA-VLP's frames: the first frame of every second, at the integer frame rate OpenCV
    reports (``int(fps)``), then N evenly spaced of those (``linspace(dtype=int)`` truncates)."""
    _check(frame_count, num_frames)
    step = max(1, int(fps))
    per_second = np.arange(0, frame_count, step, dtype=np.int64)
    picks = np.linspace(0, len(per_second) - 1, num=num_frames).astype(np.int64)
    return per_second[picks]


def pick_frames(sampler: str, frame_count: int, num_frames: int, fps: float = 0.0,
                video_id: str = "", seed: int = 0) -> Pick:
    """The frames the named sparse sampler takes; random ones are seeded by (video_id, seed)."""
    if sampler == "headtail":
        return headtail_pick(frame_count, num_frames, video_rng(video_id, seed))
    if sampler == "rand":
        return rand_pick(frame_count, num_frames, video_rng(video_id, seed))
    if sampler == "uniform":
        indices = uniform_indices(frame_count, num_frames)
    elif sampler == "middle":
        indices = middle_indices(frame_count, num_frames)
    elif sampler == "stoa":
        indices = stoa_indices(frame_count, num_frames, fps)
    else:
        raise ValueError(f"unknown sampler {sampler!r} (known: {', '.join(SPARSE)}, videoclip)")
    lo, hi = _segments(frame_count, num_frames)
    return Pick(indices, lo, hi)


def snap_to_keyframes(pick: Pick, keyframes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Move each target to the nearest keyframe inside its segment that no earlier target took.

    Returns (indices, snapped): targets whose segment holds no free keyframe stay where they
    are (decoded exactly). ``keyframes`` are presentation indices, sorted.
    """
    out = pick.indices.copy()
    snapped = np.zeros(len(out), bool)
    taken: set[int] = set()
    for i, (target, lo, hi) in enumerate(zip(pick.indices, pick.lo, pick.hi, strict=True)):
        a, b = np.searchsorted(keyframes, [lo, hi])
        free = [int(k) for k in keyframes[a:b] if int(k) not in taken]
        if free:
            best = min(free, key=lambda k: (abs(k - int(target)), k))
            out[i], snapped[i] = best, True
            taken.add(best)
    order = np.argsort(out, kind="stable")
    return out[order], snapped[order]
