"""What a training method provides to the shared loop, and the options every method takes.

A method says which tables and columns it reads (:class:`ReadSpec`), how one video's rows
become training samples and one evaluation pair (a query text and its video), how samples
are batched, its model, and its losses. The loop (:mod:`vlprep.train.loop`) does the rest:
seeds, the data loader, the optimizer, logging, checkpoints, resuming and evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, ClassVar, Generic, TypeVar

import torch
from torch import nn

from vlprep.train.data import ReadSpec, VideoRows
from vlprep.train.store_reader import StoreReader


@dataclass
class TrainConfig:
    """Options of `vlprep train` common to all methods; `options` holds the method's own."""

    store: str
    out: str
    epochs: int = 10
    batch_size: int = 64
    lr: float = 5e-4
    weight_decay: float = 0.01
    warmup_steps: int = 20
    grad_clip: float = 1.0
    seed: int = 0
    eval_fraction: float = 0.2  # held-out share of videos (a hash of the video id)
    split_seed: int = 0
    workers: int = 0  # DataLoader worker processes
    device: str = "auto"
    threads: int = 1  # torch CPU threads: small heads gain little from more, and on a busy
    #                   machine OpenMP threads waiting on each other cost far more
    shuffle_buffer: int = 256
    resume: bool = True
    log_every: int = 10
    quiet: bool = False
    options: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


OptionsT = TypeVar("OptionsT")


class Method(Generic[OptionsT]):
    """Base of the three methods; see the module docstring. A subclass is generic in its
    options (``class Alpro(Method[AlproOptions])``), sets `name` and `Options` (that
    dataclass of method options with defaults), and reads ``self.opts`` typed, without casts."""

    name: ClassVar[str] = ""
    Options: ClassVar[type[Any]]
    opts: OptionsT
    default_batch_size: ClassVar[int] = 64  # `vlprep train` without --batch-size

    def __init__(self, reader: StoreReader, options: dict[str, Any] | None = None,
                 saved: dict[str, Any] | None = None):
        """`saved` is the metadata of a checkpoint: a method rebuilt to evaluate it takes
        its options and data-derived facts (vocabulary, feature sizes) from there."""
        self.reader = reader
        known = {f.name for f in fields(self.Options)}
        given = dict((saved or {}).get("options", {}))
        given.update(options or {})
        unknown = sorted(set(given) - known)
        if unknown:
            raise ValueError(f"{self.name}: unknown option {unknown[0]!r} "
                             f"(known: {', '.join(sorted(known))})")
        self.opts = self.Options(**given)
        self.facts: dict[str, Any] = dict((saved or {}).get("facts", {})) or self.read_facts()

    # what the data is -------------------------------------------------------------------
    def read_facts(self) -> dict[str, Any]:
        """Data-derived facts the model shape depends on (feature sizes, vocabulary)."""
        return {}

    def meta(self) -> dict[str, Any]:
        """Saved with every checkpoint: enough to rebuild the model for evaluation."""
        return {"method": self.name, "options": asdict(self.opts), "facts": self.facts}

    def read_spec(self) -> ReadSpec:
        raise NotImplementedError

    def eval_read_spec(self) -> ReadSpec:
        return self.read_spec()

    # samples and batches -------------------------------------------------------------------
    def train_samples(self, rows: VideoRows, rng: random.Random) -> Iterable[Any]:
        raise NotImplementedError

    def collate(self, samples: list[Any]) -> dict[str, Any]:
        raise NotImplementedError

    def eval_samples(self, rows: VideoRows, rng: random.Random) -> Iterable[Any]:
        """At most one (query text, video) pair per video, deterministic."""
        raise NotImplementedError

    def eval_collate(self, samples: list[Any]) -> dict[str, Any]:
        return self.collate(samples)

    def loader_batch_size(self, batch_size: int) -> int | None:
        """What the DataLoader batches; None: it yields samples one by one and
        :meth:`train_batches` makes the batches (VideoCLIP's retrieval batches)."""
        return batch_size

    def train_batches(self, loader: Iterable[Any], model: nn.Module,
                      epoch: int) -> Iterator[dict[str, Any]]:
        yield from loader

    def epoch_records(self) -> list[dict[str, Any]]:
        """Method-specific records for the metrics log, collected during an epoch."""
        return list(getattr(self, "records", []))

    # model -------------------------------------------------------------------------------
    def build_model(self) -> nn.Module:
        raise NotImplementedError

    def losses(self, model: nn.Module, batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Named loss terms; "loss" is what is minimised."""
        raise NotImplementedError

    def encode_eval(self, model: nn.Module,
                    batch: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(query text vectors, video vectors) of an evaluation batch."""
        raise NotImplementedError

    def similarity(self, text: torch.Tensor, video: torch.Tensor) -> torch.Tensor:
        return text @ video.t()

    def after_training(self, model: nn.Module, out: Path) -> dict[str, Any]:
        """Extra artefacts once training ends (e.g. ALPRO's prompter export)."""
        return {}


def to_device(batch: Any, device: torch.device) -> Any:
    if torch.is_tensor(batch):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, list):
        return [to_device(v, device) for v in batch]
    return batch
