"""Probe each video's container: the facts later stages and users need, one `videos` row.

Cheap (headers, one decoded frame, and a packet count only when the container's frame count
is missing or disagrees with duration x rate) and the first place a broken file shows up, so
it runs before any decoding stage and turns unreadable or oversized inputs into readable
`errors` rows. Like decoding, it runs in the killable decode worker, so a file that hangs or
crashes FFmpeg costs one `errors` row (see :class:`vlprep.stages.decode.DecodeLimits`).
"""

from __future__ import annotations

from typing import Any, Literal

import pyarrow as pa
from pydantic import Field

from vlprep.schemas import VIDEOS
from vlprep.stages.base import Contract, Record, Resources, Stage, emit
from vlprep.stages.decode import BatchMemo, DecodeLimits, probe

COLUMNS = ("duration", "fps", "frame_count", "width", "height", "codec", "file_size",
           "real_fps", "rotation", "pix_fmt", "bit_rate", "start_time", "streams")


class ProbeOptions(DecodeLimits):
    count_frames: Literal["auto", "always", "never"] = Field(
        default="auto", description="count packets: auto = when the container's count is "
                                    "missing or disagrees with duration x fps")


def probe_video(path: str, max_file_bytes: int | None = None, **options: Any) -> dict:
    """Probe facts, in this process: duration (s), fps (average), real_fps, frame_count,
    width, height (stored, before rotation), rotation (degrees counter-clockwise), codec,
    pix_fmt, bit_rate, start_time (s), streams, file_size, frame_count_source."""
    opts = ProbeOptions(max_file_bytes=max_file_bytes, isolate=False, **options)
    return probe(path, opts, opts.count_frames)


class ProbeStage(Stage[ProbeOptions]):
    """Adds ``probe`` (see :func:`probe_video`) and emits the video's `videos` row."""

    kind = "probe"
    stateful = False
    tables = ("videos",)
    default_resources = Resources(num_cpus=1.0, batch_size=16)

    @classmethod
    def contract(cls, options: ProbeOptions) -> Contract:
        return Contract(writes=("probe",), tables=cls.tables)

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.memo = BatchMemo()

    def __call__(self, batch: list[Record]) -> list[Record]:
        return self.memo.run(batch, self.compute, self.apply)

    def process(self, record: Record) -> None:
        self.apply(record, self.compute(record))

    def compute(self, record: Record) -> dict[str, Any]:
        opts = self.options
        return probe(record["path"], opts, opts.count_frames)

    def apply(self, record: Record, info: dict[str, Any]) -> None:
        record["probe"] = info
        row = {"video_id": record["video_id"], "path": record["path"],
               **{k: info.get(k) for k in COLUMNS}}
        emit(record, "videos", pa.Table.from_pylist([row], schema=VIDEOS))
