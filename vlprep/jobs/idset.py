"""A compact "first location of each id" map, for duplicate checks on huge manifests.

A `dict[str, int]` of every video_id costs ~150 bytes an id (~1.5 GB in the driver for
a 10M-row manifest). `IdSet` keeps a 128-bit blake2b digest of each id (two uint64) and
its location (int64) in sorted numpy runs: 24 bytes an id. Recent ids sit in a small dict
for O(1) checks; when it fills it is frozen into a sorted run, and runs are merged like a
binary counter (while the last two are within 2x in size), so there are O(log n) of them.
A one-bit-a-slot filter over the frozen digests (8-16 bits an id) lets most new ids skip
the runs' binary searches, which cost a numpy call each.
Two distinct ids share a digest with probability ~n^2 / 2^129 (~1e-25 for 10M ids).
"""

from __future__ import annotations

import hashlib
import struct

import numpy as np

FREEZE_AT = 65536
_FILTER_BITS = 8  # at least this many filter bits an id: ~6-12% of new ids search the runs
_HALVES = struct.Struct(">QQ")

_Run = tuple[np.ndarray, np.ndarray, np.ndarray]  # (hi, lo, loc), sorted by hi


def _sorted(hi: np.ndarray, lo: np.ndarray, loc: np.ndarray) -> _Run:
    order = np.argsort(hi, kind="stable")  # timsort: ~linear on two concatenated runs
    return hi[order], lo[order], loc[order]


class IdSet:
    """Maps each id to the location where it was first added, in ~25-26 bytes an id."""

    def __init__(self, freeze_at: int = FREEZE_AT) -> None:
        self.freeze_at = freeze_at
        self.recent: dict[bytes, int] = {}
        self.runs: list[_Run] = []
        self.frozen = 0
        self.shift = 64  # filter slot of a digest: its top 64 - shift bits
        self.filter = bytearray(1)

    def __len__(self) -> int:
        return len(self.recent) + sum(len(run[0]) for run in self.runs)

    @property
    def nbytes(self) -> int:
        """Bytes held in the frozen runs (the recent dict is bounded by `freeze_at`)."""
        return len(self.filter) + sum(array.nbytes for run in self.runs for array in run)

    def setdefault(self, key: str, loc: int) -> int:
        """The location `key` was first added at; if it is new, records and returns `loc`."""
        digest = hashlib.blake2b(key.encode("utf-8", "surrogatepass"), digest_size=16).digest()
        recent = self.recent
        first = recent.get(digest)
        if first is not None:
            return first
        hi_int, lo_int = _HALVES.unpack(digest)
        slot = hi_int >> self.shift
        if self.filter[slot >> 3] >> (slot & 7) & 1:  # maybe frozen: search the runs
            hi, lo = np.uint64(hi_int), np.uint64(lo_int)
            for his, los, locs in self.runs:
                i = int(his.searchsorted(hi))
                while i < len(his) and his[i] == hi:
                    if los[i] == lo:
                        return int(locs[i])
                    i += 1
        recent[digest] = loc
        if len(recent) >= self.freeze_at:
            self._freeze()
        return loc

    def _freeze(self) -> None:
        halves = np.frombuffer(b"".join(self.recent), dtype=">u8").reshape(-1, 2)
        hi, lo = halves[:, 0].astype(np.uint64), halves[:, 1].astype(np.uint64)
        loc = np.fromiter(self.recent.values(), dtype=np.int64, count=len(self.recent))
        self.recent = {}
        self.runs.append(_sorted(hi, lo, loc))
        self.frozen += len(hi)
        if (1 << (64 - self.shift)) < _FILTER_BITS * self.frozen:
            self.shift = 64 - (_FILTER_BITS * self.frozen - 1).bit_length()
            self.filter = bytearray(max(1, 1 << (61 - self.shift)))
            for run in self.runs:
                self._mark(run[0])
        else:
            self._mark(hi)
        while len(self.runs) > 1 and len(self.runs[-2][0]) <= 2 * len(self.runs[-1][0]):
            newer, older = self.runs.pop(), self.runs.pop()
            merged = [np.concatenate(pair) for pair in zip(older, newer, strict=True)]
            del newer, older
            self.runs.append(_sorted(*merged))

    def _mark(self, hi: np.ndarray) -> None:
        slots = hi >> np.uint64(self.shift)
        bits = np.left_shift(np.uint8(1), (slots & np.uint64(7)).astype(np.uint8))
        np.bitwise_or.at(np.frombuffer(self.filter, dtype=np.uint8), slots >> np.uint64(3), bits)
