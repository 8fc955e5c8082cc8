"""A PyTorch IterableDataset over a store: videos joined across tables, sharded, shuffled.

Each epoch the partitions are shuffled (seeded by seed and epoch), then the row groups
within each; the resulting list of units is dealt round-robin to ``rank x DataLoader
worker``, so every shard reads different row groups and together they read each once. A
worker finishes a partition's units before the next, so it only ever holds one partition's
id index, the row groups it is reading, and a shuffle buffer of samples.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pyarrow as pa
from torch.utils.data import IterableDataset, get_worker_info

from vlprep.train.store_reader import StoreReader, Unit, group_by_video, unit_videos

Split = Literal["train", "eval", "all"]


def in_eval_split(video_id: str, fraction: float, seed: int = 0) -> bool:
    """A fixed, store-independent held-out split: a hash of the id, not its position."""
    if fraction <= 0:
        return False
    digest = hashlib.blake2b(f"{seed}:{video_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 < fraction


def keep(video_id: str, split: Split, fraction: float, seed: int = 0) -> bool:
    if split == "all":
        return True
    return in_eval_split(video_id, fraction, seed) == (split == "eval")


@dataclass(frozen=True)
class ReadSpec:
    """Which tables and columns a method reads; `driver` has one or more rows per video and
    decides the units; a video lacking rows in a `required` table is skipped."""

    driver: str
    columns: dict[str, list[str]]
    required: frozenset[str] = field(default_factory=frozenset)

    def tables(self) -> list[str]:
        return list(self.columns)


@dataclass
class VideoRows:
    """All rows one video has in the tables of a ReadSpec (absent tables: no key)."""

    video_id: str
    tables: dict[str, pa.Table]


Transform = Callable[[VideoRows, random.Random], Iterable[Any]]


def epoch_units(reader: StoreReader, driver: str, seed: int, epoch: int,
                shuffle: bool) -> list[Unit]:
    """All driver row groups for an epoch: partitions shuffled, then row groups within."""
    by_partition: dict[str, list[Unit]] = {}
    for unit in reader.units(driver):
        by_partition.setdefault(unit.partition, []).append(unit)
    keys = sorted(by_partition)
    rng = random.Random(f"{seed}:{epoch}")
    if shuffle:
        rng.shuffle(keys)
    out = []
    for key in keys:
        units = list(by_partition[key])
        if shuffle:
            rng.shuffle(units)
        out.extend(units)
    return out


def iter_videos(reader: StoreReader, spec: ReadSpec, units: list[Unit],
                wanted: Callable[[str], bool]) -> Iterator[VideoRows]:
    """Joined rows of every wanted video the given units own, partition by partition."""
    ordered: dict[str, list[Unit]] = {}
    for unit in reader.units(spec.driver):
        ordered.setdefault(unit.partition, []).append(unit)
    current = None
    for unit in units:
        if current is not None and unit.partition != current:
            reader.forget_partition(current)
        current = unit.partition
        siblings = ordered[unit.partition]
        earlier = siblings[: siblings.index(unit)]
        ids = {v for v in unit_videos(reader, unit, earlier) if wanted(v)}
        if not ids:
            continue
        grouped = {table: group_by_video(reader.rows_for(unit.partition, table, ids, cols))
                   for table, cols in spec.columns.items() if table in reader.tables()}
        for video_id in sorted(ids):
            tables = {t: g[video_id] for t, g in grouped.items() if video_id in g}
            if spec.required <= tables.keys():
                yield VideoRows(video_id, tables)
    if current is not None:
        reader.forget_partition(current)


def shuffled(items: Iterable[Any], size: int, rng: random.Random) -> Iterator[Any]:
    """A shuffle buffer: fill `size` items, then emit a random one for each new item."""
    buffer: list[Any] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        i = rng.randrange(size)
        yield buffer[i]
        buffer[i] = item
    rng.shuffle(buffer)
    yield from buffer


class StoreDataset(IterableDataset):
    """Samples made by `transform` from each video's joined rows; see the module docstring."""

    def __init__(self, store: str, spec: ReadSpec, transform: Transform, split: Split = "train",
                 eval_fraction: float = 0.2, split_seed: int = 0, seed: int = 0,
                 shuffle: bool = True, shuffle_buffer: int = 256, rank: int = 0,
                 world_size: int = 1):
        self.store, self.spec, self.transform = store, spec, transform
        self.split, self.eval_fraction, self.split_seed = split, eval_fraction, split_seed
        self.seed, self.shuffle, self.shuffle_buffer = seed, shuffle, shuffle_buffer
        self.rank, self.world_size = rank, world_size
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Call before each epoch (also with DataLoader workers: they copy it at iter time)."""
        self.epoch = epoch

    def __iter__(self) -> Iterator[Any]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info is not None else (1, 0)
        shard, shards = self.rank * workers + worker, self.world_size * workers
        reader = StoreReader(self.store)
        units = epoch_units(reader, self.spec.driver, self.seed, self.epoch, self.shuffle)
        rng = random.Random(f"{self.seed}:{self.epoch}:{shard}")

        def wanted(video_id: str) -> bool:
            return keep(video_id, self.split, self.eval_fraction, self.split_seed)

        samples = (sample for rows in iter_videos(reader, self.spec, units[shard::shards], wanted)
                   for sample in self.transform(rows, rng))
        if self.shuffle and self.shuffle_buffer > 1:
            yield from shuffled(samples, self.shuffle_buffer, rng)
        else:
            yield from samples
