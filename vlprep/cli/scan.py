"""`vlprep scan MANIFEST`: probe every row before a run."""

from __future__ import annotations

from typing import Annotated

import typer

from vlprep.cli.errors import reported


def scan(
    manifest: Annotated[str, typer.Argument(help="manifest path or URI (CSV, JSONL, Parquet)")],
    out: Annotated[str, typer.Option(help="folder for the report and filtered manifest")] = "scan",
    job: Annotated[str | None, typer.Option(help="take the caps from this job's probe")] = None,
    max_file_bytes: Annotated[int | None, typer.Option(help="cap: file size")] = None,
    max_duration: Annotated[float | None, typer.Option(help="cap: seconds")] = None,
    max_pixels: Annotated[int | None, typer.Option(help="cap: width x height")] = None,
    workers: Annotated[int | None, typer.Option(help="processes (default: all cores)")] = None,
) -> None:
    """Probe every row; report ok / missing / unreadable / no video / over caps / duplicate."""
    from vlprep.jobs.config import load_job
    from vlprep.pipeline.scan import STATUSES, probe_options_of, scan_manifest

    caps: dict = {}
    # ValueError: caps the probe stage does not know
    with reported(prefix="scan: ", usage=(ValueError,), failed="failed"):
        if job:
            caps = probe_options_of(load_job(job))
        given = {"max_file_bytes": max_file_bytes, "max_duration": max_duration,
                 "max_pixels": max_pixels}
        caps.update({k: v for k, v in given.items() if v is not None})
        result = scan_manifest(manifest, out, caps, workers)
    counts = result.counts
    typer.echo("  ".join(f"{s} {counts.get(s, 0)}" for s in STATUSES))
    typer.echo(f"report: {result.report}\nusable rows: {result.manifest}")
