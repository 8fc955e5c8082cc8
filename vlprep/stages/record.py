"""A video's record as it travels through the stages of a pass, and its bookkeeping.

A record is a dict: the manifest row (``video_id``, ``path``, ``caption``, ...), the keys
the stages leave for each other (``probe``, sampled frames, detections; see each stage's
:class:`~vlprep.stages.base.Contract`), and four bookkeeping keys kept here and nowhere
else: the pending store rows (:func:`emit`), the failure (:func:`fail`), the per-stage
seconds (:func:`charge`) and per-stage notes for the run summary (:func:`note`). Executors
and the store writer read them through these functions.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from vlprep.errors import VideoError
from vlprep.schemas import ERRORS

Record = dict[str, Any]

OUTPUTS = "_outputs"  # pending store rows: {table: pyarrow.Table}
ERROR = "_error"  # set once a stage failed the video; later stages skip the record
TIMINGS = "_seconds"  # per stage: this video's share of its batches' wall time
NOTES = "_notes"  # per stage: a note for the run summary (a sample stage's decoder fallback)
EARLIER = "earlier"  # the stage of an ERROR carried over from an earlier pass
BOOKKEEPING = (OUTPUTS, ERROR, TIMINGS, NOTES)
MAX_REASON = 500


def emit(record: Record, table: str, rows: pa.Table) -> None:
    """Queue rows (already in the table's schema) for a store table, on behalf of one video."""
    outputs = record.setdefault(OUTPUTS, {})
    if table in outputs:
        outputs[table] = pa.concat_tables([outputs[table], rows])
    else:
        outputs[table] = rows


def outputs(record: Record) -> dict[str, pa.Table]:
    """The rows the record holds for each store table."""
    return record.get(OUTPUTS, {})


def code_of(exc: BaseException) -> str | None:
    return exc.code if isinstance(exc, VideoError) else None


def reason_of(exc: BaseException) -> str:
    """A one-line, readable reason for an errors row."""
    text = str(exc) if isinstance(exc, VideoError) else f"{type(exc).__name__}: {exc}"
    text = " ".join(text.split()) or type(exc).__name__
    return text if len(text) <= MAX_REASON else text[: MAX_REASON - 3] + "..."


def fail(record: Record, stage: str, reason: str, code: str | None = None) -> None:
    """Mark the record failed at `stage` and queue its errors row; `code` classifies a
    VideoError (missing, unreadable, over_caps, ...) for `vlprep scan`."""
    record[ERROR] = {"stage": stage, "error": reason, **({"code": code} if code else {})}
    emit(record, "errors", pa.table({
        "video_id": [record["video_id"]], "stage": [stage], "error": [reason],
        "path": [record.get("path")],
    }, schema=ERRORS))


def failed(record: Record) -> bool:
    """True once any stage (of this pass or an earlier one) failed the video."""
    return record.get(ERROR) is not None


def error_of(record: Record) -> dict[str, str] | None:
    return record.get(ERROR)


def failed_earlier(record: Record) -> None:
    """Mark a video that failed in an earlier pass: it has its errors row already, so later
    stages skip it and it writes nothing again."""
    record[ERROR] = {"stage": EARLIER, "error": "failed in an earlier pass"}


def new_error(record: Record) -> dict | None:
    """The record's error when this pass made it (not one carried over from an earlier
    pass, which was counted and written then)."""
    error = record.get(ERROR)
    return error if error and error["stage"] != EARLIER else None


def charge(record: Record, stage: str, seconds: float) -> None:
    """Charge the video `seconds` of worker time in `stage`."""
    record.setdefault(TIMINGS, {})[stage] = seconds


def timings(record: Record) -> dict[str, float]:
    return record.get(TIMINGS, {})


def note(record: Record, stage: str, text: str) -> None:
    """A per-video note of `stage` for the run summary (``_runs/run-*.json``)."""
    record.setdefault(NOTES, {})[stage] = text


def notes(record: Record) -> dict[str, str]:
    return record.get(NOTES, {})


def finished(record: Record) -> Record:
    """Only the pending table rows, error, timings and notes: what travels to the writer."""
    return {"video_id": record["video_id"], "partition": record["partition"],
            OUTPUTS: record.get(OUTPUTS, {}), ERROR: record.get(ERROR),
            TIMINGS: record.get(TIMINGS, {}), NOTES: record.get(NOTES, {})}


def without_bookkeeping(record: Record) -> Record:
    """The record as the next pass starts it: the stage keys kept, no rows, error, timings
    or notes."""
    return {k: v for k, v in record.items() if k not in BOOKKEEPING}
