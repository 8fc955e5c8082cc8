"""Run a stage on a batch so that one bad video costs only its own rows.

Kept free of Ray so it can be tested directly: the Ray adapters call :func:`run_guarded`.
"""

from __future__ import annotations

import logging

from vlprep.stages.base import Stage
from vlprep.stages.record import OUTPUTS, Record, code_of, fail, failed, reason_of

log = logging.getLogger("vlprep")


def _snapshot(record: Record) -> Record:
    copy = dict(record)
    if OUTPUTS in copy:
        copy[OUTPUTS] = dict(copy[OUTPUTS])
    return copy


def run_guarded(stage: Stage, records: list[Record]) -> list[Record]:
    """Run `stage` on the live records; a failing batch is retried video by video."""
    live = [r for r in records if not failed(r)]
    if not live:
        return records
    snapshots = [_snapshot(r) for r in live]
    try:
        stage(live)
        return records
    except Exception as exc:  # noqa: BLE001 - any failure becomes per-video errors below
        if len(live) == 1:
            _restore(live[0], snapshots[0])
            fail(live[0], stage.name, reason_of(exc), code_of(exc))
            return records
        log.info("stage %s failed on a batch of %d (%s); retrying one by one",
                 stage.name, len(live), reason_of(exc))
    for record, snapshot in zip(live, snapshots, strict=True):
        _restore(record, snapshot)
        try:
            stage([record])
        except Exception as exc:  # noqa: BLE001
            _restore(record, snapshot)
            fail(record, stage.name, reason_of(exc), code_of(exc))
    return records


def _restore(record: Record, snapshot: Record) -> None:
    record.clear()
    record.update(_snapshot(snapshot))
