"""Clean-up of YouTube ASR transcripts (HowTo100M), after MMPT's caption de-duplication.

YouTube's automatic captions roll: a line often repeats the end of the previous one, or
extends it. MMPT (fairseq examples/MMPT, ``CaptionDedupProcessor``) merges such lines before
pre-tokenisation. We keep its rules but make them deterministic and word-based:

- blank lines are dropped, newlines and runs of white space become one space;
- a line that the previous one already ends with is merged into it (its end time extends);
- a line that starts with the whole previous one replaces it (times span both);
- a line whose first words repeat the last words of the previous one: the overlap stays with
  the new line and is cut from the previous one, which then ends where the new one starts.

MMPT compares characters and picks one of the last two treatments at random; comparing whole
words (case-insensitively) and always giving the overlap to the later line makes the result
reproducible and never splits a word.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPACE = re.compile(r"\s+")


@dataclass
class Line:
    start: float | None
    end: float | None
    text: str

    @property
    def words(self) -> list[str]:
        return self.text.lower().split(" ")


def _lo(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else min(a, b)


def _hi(a: float | None, b: float | None) -> float | None:
    return b if a is None else a if b is None else max(a, b)


def _overlap(prev: list[str], cur: list[str]) -> int:
    """The most words that end `prev` and start `cur`."""
    for k in range(min(len(prev), len(cur)), 0, -1):
        if prev[-k:] == cur[:k]:
            return k
    return 0


def clean_lines(lines: list[Line]) -> list[Line]:
    """Merged, non-repeating transcript lines, in order (the input is not modified)."""
    out: list[Line] = []
    for line in lines:
        text = _SPACE.sub(" ", line.text if isinstance(line.text, str) else "").strip()
        if not text:
            continue
        cur = Line(line.start, line.end, text)
        if not out:
            out.append(cur)
            continue
        prev = out[-1]
        pw, cw = prev.words, cur.words
        if len(cw) <= len(pw) and pw[-len(cw):] == cw:  # already said: extend the previous
            prev.end = _hi(prev.end, cur.end)
        elif len(pw) <= len(cw) and cw[:len(pw)] == pw:  # says more: replace the previous
            out[-1] = Line(_lo(prev.start, cur.start), _hi(prev.end, cur.end), cur.text)
        else:
            k = _overlap(pw, cw)  # < len(pw): a whole-line overlap is the case above
            if k:
                prev.text = " ".join(prev.text.split(" ")[:-k])
                prev.end = _lo(prev.end, cur.start)
                if prev.start is not None and prev.end is not None:
                    prev.end = max(prev.end, prev.start)
            out.append(cur)
    return out
