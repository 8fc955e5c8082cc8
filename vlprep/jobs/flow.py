"""The flow of record keys and tables through a job's stage list, checked when it is loaded.

Every stage declares what it reads and writes (:class:`vlprep.stages.base.Contract`). A job
is cut into passes after each aggregate stage; record keys live for one pass, tables for the
whole run. :func:`check_flow` refuses, with one line naming the stage and the key, a list in
which a stage reads a key no earlier stage of its pass writes (misordered stages, a misspelt
``frames:``, frames sampled before an aggregate), needs a table no earlier pass writes (a
prompter without ``entities``), or writes a table or key another stage writes too.
:func:`keys_to_drop` then tells each stage which keys no later stage reads.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from vlprep.errors import JobError
from vlprep.schemas.manifest import MANIFEST

if TYPE_CHECKING:
    from vlprep.stages.base import Contract

# on every record of every pass: the manifest's columns and the input partition
INPUT_KEYS = frozenset(MANIFEST.names) | {"partition"}


class Declared(Protocol):
    """A stage of a job as the flow sees it (a jobs.config.StageSpec)."""

    name: str

    @property
    def contract(self) -> Contract: ...

    @property
    def is_aggregate(self) -> bool: ...


def split_passes(stages: list[Declared]) -> list[list[Declared]]:
    """The stage list cut after each aggregate stage (which ends its pass)."""
    passes: list[list[Declared]] = [[]]
    for spec in stages:
        passes[-1].append(spec)
        if spec.is_aggregate:
            passes.append([])
    return [p for p in passes if p]


def check_flow(stages: list[Declared], source: str = "job") -> None:
    """Raise JobError (one line: stage and key) when the stage list cannot work."""
    table_writer: dict[str, str] = {}  # table -> the stage emitting it
    written_before: set[str] = set()  # tables complete before the current pass starts
    passes = split_passes(stages)
    for index, step in enumerate(passes):
        key_writer: dict[str, str] = {}  # record key -> the stage of this pass writing it
        for spec in step:
            contract = spec.contract
            where = f"{source}: stages.{spec.name}"
            for key in contract.reads:
                if key not in INPUT_KEYS and key not in key_writer:
                    raise JobError(f"{where}: {_missing_key(key, spec, passes, index)}")
            for table in contract.needs:
                if table not in written_before:
                    raise JobError(f"{where}: needs table {table!r}, "
                                   f"{_missing_table(table, stages)}")
            if contract.source and contract.source not in table_writer:
                raise JobError(f"{where}: reads table {contract.source!r}, which no earlier "
                               "stage writes")
            for table in contract.tables:
                if table in table_writer:
                    raise JobError(f"{where}: writes table {table!r}, which stage "
                                   f"{table_writer[table]!r} writes too")
                table_writer[table] = spec.name
            for key in contract.writes:
                if key in INPUT_KEYS:
                    raise JobError(f"{where}: writes record key {key!r}, a manifest column")
                if key in key_writer:
                    raise JobError(f"{where}: writes record key {key!r}, which stage "
                                   f"{key_writer[key]!r} already writes in this pass")
                key_writer[key] = spec.name
        written_before |= {t for spec in step for t in spec.contract.tables}


def _missing_key(key: str, spec: Declared, passes: list[list[Declared]], index: int) -> str:
    writers = [(i, s.name) for i, step in enumerate(passes) for s in step
               if key in s.contract.writes]
    if any(i == index for i, _ in writers):
        writer = next(name for i, name in writers if i == index)
        return f"reads record key {key!r} before stage {writer!r} writes it (move it later)"
    if any(i < index for i, _ in writers):
        writer = next(name for i, name in reversed(writers) if i < index)
        aggregate = passes[index - 1][-1].name
        return (f"reads record key {key!r}, which stage {writer!r} wrote before the aggregate "
                f"{aggregate!r}; record keys do not cross an aggregate (add a stage writing "
                f"{key!r} after it)")
    if writers:
        return f"reads record key {key!r} before stage {writers[0][1]!r} writes it (move it later)"
    known = sorted({k for step in passes for s in step for k in s.contract.writes})
    hint = f" (stages write: {', '.join(known)})" if known else ""
    return f"reads record key {key!r}, which no stage writes{hint}"


def _missing_table(table: str, stages: list[Declared]) -> str:
    if any(table in s.contract.tables for s in stages):
        return "which only a later stage writes (an aggregate must come before its readers)"
    return f"which no earlier stage writes (add a stage writing {table!r} before it)"


def keys_to_drop(stages: list[Declared]) -> dict[str, tuple[str, ...]]:
    """Per stage of one pass, the record keys written in the pass that no later stage reads:
    the stage drops them, so megabytes of frames do not travel on to stages that never look
    at them (a key nobody reads goes as soon as it is made)."""
    last: dict[str, str] = {}  # key -> its writer, then each later reader in turn
    for spec in stages:
        contract = spec.contract
        for key in (*contract.reads, *contract.optional):
            if key in last:
                last[key] = spec.name
        for key in contract.writes:
            last[key] = spec.name
    drops: dict[str, list[str]] = {}
    for key, name in last.items():
        drops.setdefault(name, []).append(key)
    return {name: tuple(keys) for name, keys in drops.items()}
