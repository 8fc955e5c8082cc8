"""Constant-rate resampling exactly as ffmpeg's ``fps`` filter does it (VideoCLIP's 30 fps).

VideoCLIP (MMPT's feature extractor) pipes ``ffmpeg -i F -vf fps=30,...`` into S3D, so its
features depend on which source frame fills each 1/30 s slot. The filter (libavfilter/vf_fps.c,
defaults ``round=near``, ``eof_action=round``) works like this:

- every input frame's pts is rescaled to the output time base 1/fps, rounding to nearest with
  halves away from zero: ``q = round(pts * tb * fps)``;
- output starts at the first frame's ``q``; for each output slot ``t`` the filter emits the last
  input frame whose ``q <= t`` (later frames with the same or an earlier ``q`` replace it, so
  frames are dropped; a frame whose successor lies further ahead is repeated);
- output ends at the end-of-stream time, rescaled the same way: the last frame's pts plus its
  duration (the ffmpeg CLI passes that as the EOF timestamp).

The ffmpeg CLI also shifts timestamps by the container's start time before filtering, and its
raw-video output is constant-rate from 0, so when the first frame sits after 0 its first frame
is repeated to fill the slots before it. :func:`fps_slots` reproduces all of it from the frame
timestamps alone, so any decoder can return the frames ffmpeg's pipeline would.
"""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import numpy as np


@dataclass(frozen=True)
class Slots:
    source: np.ndarray  # int64, one per output frame: index of the source frame it shows
    first_slot: int  # output frame number of source[0] on ffmpeg's timeline (0 after padding)
    rate: Fraction

    def slot_times(self) -> np.ndarray:
        """Seconds of each output frame on the shifted timeline (slot / rate)."""
        n = np.arange(self.first_slot, self.first_slot + len(self.source), dtype=np.float64)
        return n / float(self.rate)


def round_near_inf(x: Fraction) -> int:
    """AV_ROUND_NEAR_INF: to nearest, halves away from zero."""
    q, r = divmod(abs(x.numerator), x.denominator)
    if 2 * r >= x.denominator:
        q += 1
    return q if x >= 0 else -q


def rescale(value: int, time_base: Fraction, rate: Fraction) -> int:
    return round_near_inf(value * time_base * rate)


def fps_slots(pts: np.ndarray, time_base: Fraction, end_pts: int, rate: Fraction = Fraction(30),
              offset: int = 0, pad_start: bool = True) -> Slots:
    """Source frame index of every output frame of ``fps=rate`` for frames at ``pts``.

    ``pts`` are the frames' timestamps in presentation order (units of ``time_base``),
    ``end_pts`` the end of the last frame, ``offset`` the container start time in the same
    units (subtracted first, as the CLI does). ``pad_start`` repeats the first frame from
    slot 0, as the CLI's constant-rate raw output does.
    """
    if len(pts) == 0:
        raise ValueError("no frames to resample")
    q = [rescale(int(p) - offset, time_base, rate) for p in pts]
    eof = rescale(int(end_pts) - offset, time_base, rate)
    out: list[int] = []
    t, j, n = q[0], 0, len(q)
    while True:
        while j + 1 < n and q[j + 1] <= t:
            j += 1  # a later frame is due by now: the buffered one is dropped
        if j == n - 1 and eof <= t:
            break
        out.append(j)
        t += 1
    first = q[0]
    if pad_start and first > 0:
        out = [0] * first + out
        first = 0
    return Slots(np.asarray(out, dtype=np.int64), first, rate)


def last_frame_duration(pts: np.ndarray, durations: np.ndarray, avg_rate: Fraction | None,
                        time_base: Fraction) -> int:
    """The last frame's duration the way the CLI estimates it: the packet's own duration, else
    the gap to the frame before, else one frame at the average rate, else one tick."""
    if len(durations) and durations[-1] > 0 and not (durations[-1] == 1 and len(pts) > 1
                                                     and pts[-1] - pts[-2] > 2):
        return int(durations[-1])
    if len(pts) > 1 and pts[-1] > pts[-2]:
        return int(pts[-1] - pts[-2])
    if avg_rate:
        return max(1, round_near_inf(1 / (avg_rate * time_base)))
    return 1


def windows(num_slots: int, window: int) -> tuple[int, int]:
    """(number of windows, zero-padded frames at the end) for non-overlapping windows."""
    count = -(-num_slots // window)
    return count, count * window - num_slots
