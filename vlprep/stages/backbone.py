"""The template every frozen-backbone stage follows (CLIP, S3D, the detector, the prompter).

``load`` (once per worker) gives a :class:`Runtime`: the model behind one call, whatever
runs it (torch or ONNX Runtime). ``__call__`` gathers the inputs of every video of a batch
(``inputs``: by default its sampled frames), encodes them together, so short videos still
fill a GPU, splits the outputs back per video (``units`` outputs each) and emits the rows
``rows`` builds from them, by column name. A subclass writes those three or four methods
and its options; the options every backbone shares (weights, device, precision, the frames
key) are validated when the job is read, before Ray starts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Protocol, TypeVar

import numpy as np
import pyarrow as pa
from pydantic import Field, field_validator

from vlprep.stages.base import Contract, Resources, Stage, WeightsOptions
from vlprep.stages.frames import SampledFrames, get_frames
from vlprep.stages.record import Record, emit


class ModelOptions(WeightsOptions):
    """Weights, device and the record key of the frames: what every model stage has."""

    speed_only = frozenset({"device"})

    device: str = Field(default="auto", description="auto (GPU when there is one), cpu, cuda:N")
    frames: str = Field(default="frames", description="record key of the sampled frames")

    @field_validator("device")
    @classmethod
    def _known_device(cls, value: str) -> str:
        if value != "auto" and value.split(":")[0] not in ("cpu", "cuda", "mps"):
            raise ValueError("expected auto, cpu, cuda or cuda:N")
        return value

    @property
    def checkpoint_path(self) -> str:
        """The checkpoint, which validation made sure is given unless init: random."""
        if self.checkpoint is None:
            raise ValueError("no checkpoint (init: random)")
        return self.checkpoint


class BackboneOptions(ModelOptions):
    """Options of the backbones that run frames through torch under autocast."""

    precision: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        default="auto", description="autocast dtype; auto: bf16/fp16 on GPU, fp32 on CPU")

    def check_weights(self, kind: Literal["file", "dir"], random_only: dict[str, str] | None = None
                      ) -> None:
        """checkpoint xor init: random; the checkpoint exists; `random_only` options (attribute
        -> job key; they describe a random model) are not set next to a checkpoint."""
        if self.init == "random":
            if self.checkpoint is not None:
                raise ValueError("give either a checkpoint or init: random, not both")
            return
        for name, key in (random_only or {}).items():
            if getattr(self, name) is not None:
                raise ValueError(f"{key} applies to init: random only")
        if self.checkpoint is None:
            raise ValueError("checkpoint is required (or set init: random for a demo)")
        path = Path(self.checkpoint)
        if kind == "dir" and not (path.is_dir() or path.suffix == ".onnx" and path.is_file()):
            raise ValueError(f"checkpoint {self.checkpoint!r} is not a directory")
        if kind == "file" and not path.is_file():
            raise ValueError(f"checkpoint {self.checkpoint!r} is not a file")


class Runtime(Protocol):
    """A loaded backbone as its stage calls it: inputs of a whole batch in, outputs out."""

    name: str  # "torch" or "onnx"
    dims: dict[str, int]  # output sizes the table schema takes (embedding dim, ...)

    def __call__(self, inputs: np.ndarray) -> Any: ...


@dataclass
class Encoder:
    """A Runtime from a function: ``model`` is the module or ONNX session behind it."""

    name: str
    fn: Callable[[np.ndarray], Any]
    model: Any = None
    dims: dict[str, int] = field(default_factory=dict)

    def __call__(self, inputs: np.ndarray) -> Any:
        return self.fn(inputs)


def take(outputs: Any, start: int, stop: int) -> Any:
    """Outputs [start:stop] along the first axis of every array (or list) they hold."""
    if isinstance(outputs, dict):
        return {k: take(v, start, stop) for k, v in outputs.items()}
    if isinstance(outputs, tuple):
        return tuple(take(v, start, stop) for v in outputs)
    return outputs[start:stop]


def table_of(schema: pa.Schema, columns: dict[str, Any]) -> pa.Table:
    """A table of `schema` from columns by name (arrays or lists); a missing or unknown name
    is an error, not a silently shifted column."""
    names = set(schema.names)
    if set(columns) != names:
        raise KeyError(f"{schema.metadata[b'vlprep.table'].decode()}: columns "
                       f"missing {sorted(names - set(columns))}, unknown "
                       f"{sorted(set(columns) - names)}")
    return pa.Table.from_arrays([columns[name] for name in schema.names], schema=schema)


OptionsT = TypeVar("OptionsT", bound=ModelOptions)


class BackboneStage(Stage[OptionsT]):
    """load -> encode (all inputs of a batch at once) -> rows per video, by column name.

    Subclasses name their kind, table and default resources in the class line
    (``class ClipStage(BackboneStage[ClipOptions], kind="clip", table="clip_frames",
    resources=...)``) and write :meth:`load` and :meth:`rows`; :meth:`inputs` and
    :meth:`units` when an input is not one sampled frame (S3D's windows, the prompter's
    crops; :meth:`batch_inputs` when they do not concatenate); :meth:`leaves` and
    :meth:`leave` when they leave a record key for later stages.
    """

    stateful: ClassVar[bool] = True
    model: Runtime | None = None

    def __init_subclass__(cls, kind: str = "", table: str = "",
                          resources: Resources | None = None, **kwargs: object) -> None:
        """A backbone declares itself in its class line: its kind, the one table it emits
        and its default resources."""
        super().__init_subclass__(**kwargs)
        if kind:
            cls.kind = kind
        if table:
            cls.tables = (table,)
        if resources is not None:
            cls.default_resources = resources

    @classmethod
    def leaves(cls, options: OptionsT) -> tuple[str, ...]:
        """Record keys the stage leaves for later stages (default: none)."""
        return ()

    @classmethod
    def contract(cls, options: OptionsT) -> Contract:
        return Contract(reads=(options.frames,), writes=cls.leaves(options), tables=cls.tables)

    def setup(self) -> None:
        if self.model is not None:
            return
        from vlprep.models.accel import resolve_device

        self.device = resolve_device(self.options.device)
        self.model = self.load()

    def load(self) -> Runtime:
        """The model, on ``self.device``, behind one call."""
        raise NotImplementedError

    def inputs(self, record: Record, sampled: SampledFrames) -> tuple[Any, Any]:
        """What goes into the model for one video, and what :meth:`rows` needs besides."""
        return sampled.frames, None

    def units(self, sampled: SampledFrames, inputs: Any) -> int:
        """How many outputs the model gives for one video's inputs (default: one each)."""
        return len(inputs)

    def batch_inputs(self, parts: list[Any]) -> Any:
        """The model's input for the whole batch from each video's (default: concatenated)."""
        return np.concatenate(parts)

    def rows(self, record: Record, sampled: SampledFrames, outputs: Any, extra: Any
             ) -> pa.Table:
        raise NotImplementedError

    def leave(self, record: Record, sampled: SampledFrames, outputs: Any) -> None:
        """Put what later stages read on the record (default: nothing)."""

    def __call__(self, batch: list[Record]) -> list[Record]:
        self.setup()
        assert self.model is not None
        sampled = [get_frames(record, self.options.frames) for record in batch]
        prepared = [self.inputs(record, s) for record, s in zip(batch, sampled, strict=True)]
        counts = [self.units(s, x) for s, (x, _) in zip(sampled, prepared, strict=True)]
        outputs = self.model(self.batch_inputs([x for x, _ in prepared]))
        start = 0
        for record, s, (_, extra), n in zip(batch, sampled, prepared, counts, strict=True):
            part = take(outputs, start, start + n)
            start += n
            emit(record, self.tables[0], self.rows(record, s, part, extra))
            self.leave(record, s, part)
        return batch
