"""What a pass's last step hands the driver for a batch: metadata, never table rows.

:func:`write_batch` runs where the batch's last stage ran (any executor's worker): it writes
the records' pending table rows through the store's :class:`BatchWriter` and keeps, per video,
only its partition, its new error (if any) and its stage timings, plus the written files'
descriptions and which process wrote them. The driver commits from these reports alone.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pyarrow as pa

from vlprep.stages.record import Record, new_error, notes, outputs, timings
from vlprep.store.writer import BatchWriter, WrittenFile, writer_identity

REPORT = pa.schema([pa.field("report", pa.large_string())])


@dataclass
class BatchReport:
    videos: list[dict] = field(default_factory=list)  # video_id, partition, error, seconds
    files: list[WrittenFile] = field(default_factory=list)
    writer: dict = field(default_factory=dict)  # node, pid

    def by_partition(self) -> dict[int, tuple[list[str], list[WrittenFile]]]:
        out: dict[int, tuple[list[str], list[WrittenFile]]] = {}
        for video in self.videos:
            out.setdefault(video["partition"], ([], []))[0].append(video["video_id"])
        for f in self.files:
            out.setdefault(f.partition, ([], []))[1].append(f)
        return out

    def to_table(self) -> pa.Table:
        data = {"videos": self.videos, "files": [f.to_dict() for f in self.files],
                "writer": self.writer}
        return pa.table({"report": [json.dumps(data)]}, schema=REPORT)

    @classmethod
    def from_table(cls, table: pa.Table) -> list[BatchReport]:
        out = []
        for text in table.column("report").to_pylist():
            data = json.loads(text)
            out.append(cls(data["videos"], [WrittenFile.from_dict(f) for f in data["files"]],
                           data["writer"]))
        return out


def write_batch(writer: BatchWriter, records: list[Record]) -> BatchReport:
    """Write the records' pending rows (worker side) and report them."""
    rows = [(r["partition"], table, data) for r in records
            for table, data in outputs(r).items()]
    files = writer.write(rows)
    videos = [{"video_id": r["video_id"], "partition": r["partition"], "error": new_error(r),
               "seconds": timings(r), "notes": notes(r)} for r in records]
    return BatchReport(videos, files, writer_identity() if files else {})
