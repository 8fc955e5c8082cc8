"""Per-video texts: captions and timed transcript segments, one `texts` row each.

Captions come first (``captions`` when the manifest has them, else ``caption``: the manifest
keeps ``caption`` equal to the first of ``captions``), then transcript segments with their
times. ``segment`` numbers the rows of one video from 0. Blank texts are skipped; a video with
no text emits nothing, which is not an error (plain video corpora have none).
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa
from pydantic import Field

from vlprep.schemas import TEXTS
from vlprep.stages.base import Record, Resources, Stage, StageOptions, emit


class TextsOptions(StageOptions):
    max_chars: int | None = Field(default=None, gt=0, description="truncate longer texts")


def _time(value: Any) -> float | None:
    return None if value is None else float(value)


def text_rows(record: Record, max_chars: int | None = None) -> list[dict[str, Any]]:
    """The `texts` rows of one record, in order, without the blank ones."""
    captions = record.get("captions") or []
    if not captions and record.get("caption") is not None:
        captions = [record["caption"]]
    items = [("caption", c, None, None) for c in captions]
    items += [("transcript", s.get("text"), _time(s.get("start")), _time(s.get("end")))
              for s in record.get("segments") or []]
    rows = []
    for source, text, start, end in items:
        text = (text or "").strip()
        if max_chars is not None:
            text = text[:max_chars].rstrip()
        if text:
            rows.append({"video_id": record["video_id"], "segment": len(rows), "source": source,
                         "text": text, "start": start, "end": end})
    return rows


class TextsStage(Stage):
    """Turns a record's caption(s) and transcript into `texts` rows; no decoding, no model."""

    kind = "texts"
    Options = TextsOptions
    stateful = False
    tables = ("texts",)
    default_resources = Resources(num_cpus=0.5, batch_size=64)

    def process(self, record: Record) -> None:
        opts: TextsOptions = self.options  # type: ignore[assignment]
        rows = text_rows(record, opts.max_chars)
        if rows:
            emit(record, "texts", pa.Table.from_pylist(rows, schema=TEXTS))
