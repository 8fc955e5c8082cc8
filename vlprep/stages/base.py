"""The stage contract: plain Python, no Ray.

A stage is set up once per worker (`setup`, e.g. load a model) and then called on batches of
videos. A batch is a list of per-video records (dicts). A stage reads the keys earlier stages
left (``path``, ``frames``, ...), adds its own, and emits rows for store tables with
:func:`emit`. A failure of one video is raised as :class:`VideoError` (or any exception); the
runner turns it into an ``errors`` row for that video and the rest of the batch goes on.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field

from vlprep.errors import VideoError  # noqa: F401 - re-exported

Record = dict[str, Any]

# Key under which a record carries its pending store rows: {table: pyarrow.Table}.
OUTPUTS = "_outputs"


class StageOptions(BaseModel):
    """Base of every stage's options model: unknown keys are an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


class WeightsOptions(StageOptions):
    """Options every backbone stage shares: where its weights come from and their checksum.

    `sha256` (of the checkpoint file, or of a model directory as `vlprep weights verify`
    prints it) stops the job before any work when the checkpoint differs.
    """

    checkpoint: str | None = Field(default=None, description="local path or URI of the weights")
    init: Literal["checkpoint", "random"] = "checkpoint"
    seed: int = Field(default=0, description="seed of init: random")
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")


@dataclass(frozen=True)
class Resources:
    """What one worker of a stage needs; the runner maps it onto Ray."""

    num_cpus: float = 1.0
    num_gpus: float = 0.0
    batch_size: int = 4
    concurrency: int = 1  # workers (actor pool size) for stateful stages; max tasks otherwise


class Stage:
    """Base class of all stages.

    Subclasses set ``kind`` (the name used in job files), ``Options`` (a StageOptions model),
    ``stateful`` (True when ``setup`` loads something worth keeping: the runner then uses an
    actor pool), ``tables`` (the store tables the stage may emit) and ``default_resources``
    (what a job file's num_cpus/num_gpus/batch_size/concurrency keys override).
    """

    kind: ClassVar[str] = ""
    Options: ClassVar[type[StageOptions]] = StageOptions
    stateful: ClassVar[bool] = False
    tables: ClassVar[tuple[str, ...]] = ()
    default_resources: ClassVar[Resources] = Resources()

    def __init__(self, options: StageOptions, resources: Resources, name: str | None = None,
                 store: str | None = None):
        self.options = options
        self.resources = resources
        self.name = name or self.kind
        self.store = store  # the job's store URI, for stages that read earlier tables

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


def emit(record: Record, table: str, rows: pa.Table) -> None:
    """Queue rows (already in the table's schema) for a store table, on behalf of one video."""
    outputs = record.setdefault(OUTPUTS, {})
    if table in outputs:
        outputs[table] = pa.concat_tables([outputs[table], rows])
    else:
        outputs[table] = rows


class AggregateStage:
    """A corpus-wide stage: it reads a whole table written by the stages before it.

    The runner runs :meth:`partial` on batches of ``source`` (only ``columns``) in parallel,
    sums the numeric columns of the partial results grouped by ``keys`` (a Ray aggregation,
    so no process holds the whole table), and hands the totals to :meth:`finalize`, which
    returns the tables to write. Per-video stages after an aggregate stage run in a later pass
    and may read its tables (``self.store``).
    """

    kind: ClassVar[str] = ""
    Options: ClassVar[type[StageOptions]] = StageOptions
    source: ClassVar[str] = ""
    columns: ClassVar[tuple[str, ...]] = ()
    keys: ClassVar[tuple[str, ...]] = ()
    tables: ClassVar[tuple[str, ...]] = ()
    default_resources: ClassVar[Resources] = Resources(batch_size=4096)

    def __init__(self, options: StageOptions, resources: Resources, name: str | None = None,
                 store: str | None = None):
        self.options = options
        self.resources = resources
        self.name = name or self.kind
        self.store = store

    def setup(self) -> None:
        """Per-worker set-up before :meth:`partial` is called."""

    def partial(self, batch: pa.Table) -> pa.Table:
        """Partial aggregates of one batch: the ``keys`` columns plus numeric columns to sum."""
        raise NotImplementedError

    def finalize(self, totals: pa.Table) -> dict[str, pa.Table]:
        """The output tables from the summed partials (small: one row per key)."""
        raise NotImplementedError
