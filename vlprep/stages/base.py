"""The stage contract: plain Python, no Ray.

A stage is set up once per worker (`setup`, e.g. load a model) and then called on batches of
videos. A batch is a list of per-video records (:mod:`vlprep.stages.record`). A stage
declares what it reads and leaves on the records and which store tables it reads and emits
(:class:`Contract`); the job loader checks that the keys flow through the stage list before
any work, and the executors drop a key after its last reader. A failure of one video is
raised as :class:`VideoError` (or any exception); the executor turns it into an ``errors``
row for that video and the rest of the batch goes on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar, Generic, Literal, TypeVar, get_args

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from vlprep.errors import VideoError
from vlprep.stages.record import OUTPUTS, Record, emit


class StageOptions(BaseModel):
    """Base of every stage's options model: unknown keys are an error, not silently ignored.

    ``speed_only`` names the options that change how fast a stage runs, never what it
    writes (batch sizes, devices, timeouts); they stay out of a store's recipe. Each options
    class adds its own; :meth:`speed_options` gathers them along the class hierarchy.
    """

    model_config = ConfigDict(extra="forbid")
    speed_only: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def speed_options(cls) -> frozenset[str]:
        names: frozenset[str] = frozenset()
        for klass in cls.__mro__:
            names |= vars(klass).get("speed_only", frozenset())
        return names


class WeightsOptions(StageOptions):
    """Options every backbone stage shares: where its weights come from and their checksum.

    `sha256` (of the checkpoint file, or of a model directory as `vlprep weights verify`
    prints it) stops the job before any work when the checkpoint differs.
    """

    speed_only = frozenset({"sha256"})  # checked against the checkpoint, which the recipe has

    checkpoint: str | None = Field(default=None, description="local path or URI of the weights")
    init: Literal["checkpoint", "random"] = "checkpoint"
    seed: int = Field(default=0, description="seed of init: random")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")


OptionsT = TypeVar("OptionsT", bound=StageOptions)


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs; the runner maps it onto Ray."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 4
    concurrency: int = 1  # workers (actor pool size) for stateful stages; max tasks otherwise
    # custom Ray resources each worker holds (a node label such as {"worker2": 1}, an
    # accelerator type): pins a stage to the nodes that have them; the local executor has none
    resources: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Contract:
    """What a stage needs and gives, by name, for the job loader's flow check.

    Record keys live for one pass (a pass ends at an aggregate stage); manifest columns
    (``video_id``, ``path``, ``caption``, ...) are on every record of every pass.
    """

    reads: tuple[str, ...] = ()  # record keys an earlier stage of the same pass must write
    optional: tuple[str, ...] = ()  # record keys used when present (never required)
    writes: tuple[str, ...] = ()  # record keys left for later stages of the pass
    needs: tuple[str, ...] = ()  # store tables an aggregate of an earlier pass must write
    source: str | None = None  # aggregates: the table read whole, emitted by an earlier stage
    tables: tuple[str, ...] = ()  # store tables the stage emits


def _options_from_generic(cls: type) -> None:
    """``Options`` is the class's options type argument (``Stage[ClipOptions]``), so it is
    written once; a class may still set it itself."""
    if "Options" in vars(cls):
        return
    for base in getattr(cls, "__orig_bases__", ()):
        for arg in get_args(base):
            if isinstance(arg, type) and issubclass(arg, StageOptions):
                setattr(cls, "Options", arg)  # noqa: B010 - a ClassVar of the subclass
                return


class _Configured(Generic[OptionsT]):
    """What every stage is built from: its options, resources, name and the job's store."""

    kind: ClassVar[str] = ""
    Options: ClassVar[type[StageOptions]] = StageOptions
    tables: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: object) -> None:
        super().__init_subclass__(**kwargs)
        _options_from_generic(cls)

    def __init__(self, options: OptionsT, resources: Resources, name: str | None = None,
                 store: str | None = None):
        self.options: OptionsT = options
        self.resources = resources
        self.name = name or self.kind
        self.store = store  # the job's store URI, for stages that read earlier tables


class Stage(_Configured[OptionsT]):
    """Base class of all per-video stages, generic in its options model.

    Subclasses set ``kind`` (the name used in job files), ``Options`` (a StageOptions
    model; by default the class's type argument, ``Stage[ProbeOptions]``), ``stateful``
    (True when ``setup`` loads something worth keeping: the runner then uses an actor
    pool), ``tables`` (the store tables the stage emits), ``default_resources`` (what a
    job file's num_cpus/num_gpus/batch_size/concurrency keys override), and
    :meth:`contract` when it reads or writes record keys.
    """

    stateful: ClassVar[bool] = False
    default_resources: ClassVar[Resources] = Resources()

    @classmethod
    def contract(cls, options: OptionsT) -> Contract:
        """The record keys and tables of a stage with these options (default: emits
        ``tables``, reads and writes no record key)."""
        return Contract(tables=cls.tables)

    def setup(self) -> None:
        """Load models or other per-worker state; called once before the first batch."""

    def __call__(self, batch: list[Record]) -> list[Record]:
        """Process a batch; the default runs :meth:`process` on each video."""
        for record in batch:
            self.process(record)
        return batch

    def process(self, record: Record) -> None:
        """Process one video in place (used by the default :meth:`__call__`)."""
        raise NotImplementedError(f"stage {self.kind!r} implements neither __call__ nor process")


class AggregateStage(_Configured[OptionsT]):
    """A corpus-wide stage: it reads a whole table written by the stages before it.

    The runner runs :meth:`partial` on batches of ``source`` (only ``columns``) in parallel,
    sums the numeric columns of the partial results grouped by ``keys`` and hands the totals
    to :meth:`finalize`, which returns the tables to write. Per-video stages after an
    aggregate stage run in a later pass and may read its tables (``self.store``).
    """

    source: ClassVar[str] = ""
    columns: ClassVar[tuple[str, ...]] = ()
    keys: ClassVar[tuple[str, ...]] = ()
    default_resources: ClassVar[Resources] = Resources(batch_size=4096)

    @classmethod
    def contract(cls, options: OptionsT) -> Contract:
        return Contract(source=cls.source, tables=cls.tables)

    def setup(self) -> None:
        """Per-worker set-up before :meth:`partial` is called."""

    def partial(self, batch: pa.Table) -> pa.Table:
        """Partial aggregates of one batch: the ``keys`` columns plus numeric columns to sum."""
        raise NotImplementedError

    def finalize(self, totals: pa.Table) -> dict[str, pa.Table]:
        """The output tables from the summed partials (small: one row per key)."""
        raise NotImplementedError


__all__ = ["AggregateStage", "Contract", "OUTPUTS", "Record", "Resources", "Stage",
           "StageOptions", "VideoError", "WeightsOptions", "emit"]
