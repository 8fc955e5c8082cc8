"""VideoCLIP's overlapped video-text clips, sampled at training time (MMPT's parameters).

From fairseq examples/MMPT (``OverlappedAligner``, ``TextClipSamplingProcessor``,
``VideoClipSamplingProcessor``): a random ASR line is the centre; lines are added at random
to its left or right until the text reaches a token budget drawn from [8, 64]; the video
clip's centre second is drawn inside the text span's [floor(start), ceil(end)], and the clip
grows second by second at random to either side up to a length drawn from [3, 32] seconds.
So video and text overlap but rarely share both ends, which is VideoCLIP's point.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Line:
    """One timed transcript line (seconds) and its token ids (no special tokens)."""

    start: float
    end: float
    ids: tuple[int, ...]


@dataclass(frozen=True)
class ClipParams:
    min_text_tokens: int = 8
    max_text_tokens: int = 64
    min_video_seconds: int = 3
    max_video_seconds: int = 32


def text_span(lines: list[Line], centre: int, budget: int, rng: random.Random,
              max_seconds: float = 256.0) -> list[int]:
    """Indices of consecutive lines around `centre`, grown until `budget` tokens."""
    first, last = centre, centre + 1  # the span is lines[first:last]
    tokens = len(lines[centre].ids)
    seconds = max(0.0, lines[centre].end - lines[centre].start)
    while (first > 0 or last < len(lines)) and tokens < budget and seconds < max_seconds:
        if (rng.random() > 0.5 and last < len(lines)) or first == 0:
            tokens += len(lines[last].ids)
            last += 1
        else:
            first -= 1
            tokens += len(lines[first].ids)
        seconds = max(0.0, lines[last - 1].end - lines[first].start)
    return list(range(first, last))


def video_span(num_seconds: int, length: int, centre: int,
               rng: random.Random) -> tuple[int, int]:
    """[start, end) seconds grown one second at a time from `centre`, to `length` seconds
    or the whole video."""
    if not 0 <= centre < num_seconds:
        raise ValueError(f"centre {centre} outside a video of {num_seconds} s")
    start = end = centre
    grown = 0
    while (start > 0 or end < num_seconds) and grown < length:
        if start <= 0:
            end += 1
        elif end >= num_seconds:
            start -= 1
        elif rng.random() > 0.5:
            end += 1
        else:
            start -= 1
        grown += 1
    return start, end


@dataclass(frozen=True)
class Clip:
    start: int  # video seconds [start, end)
    end: int
    lines: tuple[int, ...]  # the text span's line indices
    ids: tuple[int, ...]  # their token ids, concatenated, cut to the text budget


def overlapped_clip(lines: list[Line], num_seconds: int, rng: random.Random,
                    params: ClipParams = ClipParams()) -> Clip:
    """One training clip: a text span and an overlapping video span."""
    if not lines or num_seconds <= 0:
        raise ValueError("a clip needs at least one text line and one second of video")
    centre_line = rng.randrange(len(lines))
    budget = rng.randint(params.min_text_tokens, params.max_text_tokens)
    span = text_span(lines, centre_line, budget, rng)
    low = math.floor(lines[span[0]].start)
    high = math.ceil(lines[span[-1]].end)
    centre = rng.randint(low, high) if low < high else (low + high) // 2
    centre = max(0, min(num_seconds - 1, centre))
    length = rng.randint(params.min_video_seconds, params.max_video_seconds)
    start, end = video_span(num_seconds, length, centre, rng)
    ids = [i for index in span for i in lines[index].ids][: params.max_text_tokens]
    return Clip(start, end, tuple(span), tuple(ids))
