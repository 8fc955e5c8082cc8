"""`vlprep scan`: probe every manifest row in parallel and sort out what a run would fail on.

Only the probe runs (container headers and one decoded frame), so a scan is much cheaper than
a run. Every row gets a status - ok, missing, unreadable, no_video_stream, over_caps or
duplicate - in a report table, and the usable rows become a filtered manifest.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from vlprep.jobs.idset import IdSet
from vlprep.jobs.manifest import has_scheme, read_manifest
from vlprep.schemas.manifest import MANIFEST
from vlprep.stages.record import error_of, outputs

STATUSES = ("ok", "missing", "unreadable", "no_video_stream", "over_caps", "duplicate")
SCAN_REPORT = pa.schema([
    pa.field("video_id", pa.string(), nullable=False),
    pa.field("path", pa.string()),
    pa.field("status", pa.string(), nullable=False),
    pa.field("reason", pa.string()),
    pa.field("duration", pa.float64()),
    pa.field("width", pa.int32()),
    pa.field("height", pa.int32()),
    pa.field("file_size", pa.int64()),
], metadata={"vlprep.table": "scan", "vlprep.schema_version": "1"})
REPORT_FILE, OK_MANIFEST = "scan.parquet", "manifest.ok.parquet"


@dataclass
class ScanResult:
    counts: Counter
    report: Path
    manifest: Path


def _status_of(error: dict) -> str:
    code = error.get("code")
    if code in STATUSES and code != "unreadable":
        return code
    text = error["error"].lower()
    if "no video stream" in text:
        return "no_video_stream"
    if "max_" in text or "too large" in text or "exceeds" in text:
        return "over_caps"
    return "unreadable"


_LOCAL: dict[str, Any] = {}  # per worker process: the local executor and its probe stage


def probe_row(row: dict[str, Any], probe_options: dict[str, Any]) -> dict[str, Any]:
    """Probe one row (in a worker process, on the local executor) and return its report
    row."""
    from vlprep.jobs.config import StageSpec
    from vlprep.pipeline.executors import LocalExecutor
    from vlprep.stages.probe import ProbeStage

    out = {"video_id": row["video_id"], "path": row["path"], "status": "ok", "reason": None}
    path = row["path"]
    if not has_scheme(path) and not os.path.exists(path):
        return {**out, "status": "missing", "reason": "no such file"}
    key = json.dumps(probe_options, sort_keys=True)
    if _LOCAL.get("key") != key:
        spec = StageSpec("probe", ProbeStage, ProbeStage.Options(**probe_options),
                         ProbeStage.default_resources)
        _LOCAL.update(key=key, spec=spec,  # the probe runs no torch: no threads to set
                      executor=LocalExecutor(journal=False, worker_threads=False))
    [record] = _LOCAL["executor"].run([_LOCAL["spec"]], [dict(row, partition=0)])
    error = error_of(record)
    if error:  # every failure is a status, never a crash
        return {**out, "status": _status_of(error), "reason": error["error"]}
    info = [r.to_pylist()[0] for t, r in outputs(record).items() if t == "videos"][0]
    return {**out, **{k: info.get(k) for k in ("duration", "width", "height", "file_size")}}


def probe_options_of(job: Any) -> dict[str, Any]:
    """The caps of a job's probe stage (none: the probe's defaults)."""
    from vlprep.stages.probe import ProbeStage

    probes = [s for s in job.stages if issubclass(s.cls, ProbeStage)]
    return probes[0].options.model_dump() if probes else {}


def scan_manifest(manifest: str, out_dir: str | Path, probe_options: dict[str, Any] | None = None,
                  workers: int | None = None, chunk_rows: int = 4096) -> ScanResult:
    """Scan `manifest`, writing OUT/scan.parquet and OUT/manifest.ok.parquet (streamed)."""
    from vlprep.stages.probe import ProbeStage

    probe_options = ProbeStage.Options(**(probe_options or {})).model_dump()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts: Counter = Counter()
    seen = IdSet()  # compact: a manifest of millions of ids does not fill the memory
    row_number = 0
    tmp_report, tmp_ok = out / f".{REPORT_FILE}.tmp", out / f".{OK_MANIFEST}.tmp"
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool, \
            pq.ParquetWriter(tmp_report, SCAN_REPORT) as report, \
            pq.ParquetWriter(tmp_ok, MANIFEST) as ok_rows:
        for batch in read_manifest(manifest, batch_rows=chunk_rows, allow_duplicates=True):
            rows = batch.to_pylist()
            fresh = []
            for r in rows:
                row_number += 1
                if seen.setdefault(r["video_id"], row_number) == row_number:
                    fresh.append(r)
            fresh_ids = {id(r) for r in fresh}
            probed = iter(pool.map(probe_row, fresh, [probe_options] * len(fresh),
                                   chunksize=max(1, len(fresh) // (4 * workers))))
            results = []
            for row in rows:
                if id(row) in fresh_ids:
                    results.append(next(probed))
                else:
                    results.append({"video_id": row["video_id"], "path": row["path"],
                                    "status": "duplicate", "reason": "video_id seen before"})
            counts.update(r["status"] for r in results)
            report.write_table(pa.Table.from_pylist(results, schema=SCAN_REPORT))
            keep = [row for row, r in zip(rows, results, strict=True) if r["status"] == "ok"]
            ok_rows.write_table(pa.Table.from_pylist(keep, schema=MANIFEST))
    tmp_report.replace(out / REPORT_FILE)
    tmp_ok.replace(out / OK_MANIFEST)
    (out / "scan.json").write_text(json.dumps({"manifest": manifest, "counts": dict(counts)}))
    return ScanResult(counts, out / REPORT_FILE, out / OK_MANIFEST)
