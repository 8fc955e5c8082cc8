"""`vlprep run JOB` and `vlprep plan JOB` (CONTRACT.md, CLI)."""

from __future__ import annotations

import json
import logging
from typing import Annotated

import typer

from vlprep.cli.errors import reported, setup_logging

Job = Annotated[str, typer.Argument(help="job file (YAML) or built-in job name, e.g. demo")]
Overrides = Annotated[list[str] | None, typer.Option("--set", help="override KEY=VALUE")]


def run(
    job: Job,
    set_: Overrides = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster (default: local)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
    new_store: Annotated[bool, typer.Option(
        "--new-store", help="delete the store's contents first (to change its recipe)")] = False,
    executor: Annotated[str, typer.Option(
        help="ray (default), or local: one process, no Ray (debugging, tiny jobs)")] = "ray",
) -> None:
    """Run a job: manifest in, store out. Failed videos become rows of `errors`."""
    from vlprep.jobs.config import load_job
    from vlprep.pipeline.inspect import inspect_store, render
    from vlprep.pipeline.runner import run_job, run_summary

    setup_logging(quiet)
    with reported(failed="job failed"):
        loaded = load_job(job, set_ or [])
        result = run_job(loaded, address=address, quiet=quiet, new_store=new_store,
                         executor=executor)
    c = result.counts
    typer.echo(f"done: {c.videos} videos processed ({c.failed} failed), "
               f"{c.partitions} partitions written, {result.skipped_partitions} already committed, "
               f"{result.seconds:.1f}s")
    typer.echo(f"store: {loaded.store}")
    if not quiet:
        _render_summary(run_summary(result))
        render(inspect_store(loaded.store))


def _render_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table("stage", "in", "ok", "errors", "worker s", "videos/worker s", "top error",
                  title="this run, per stage")
    for name, st in summary["stages"].items():
        top = next(iter(st["errors_by_reason"]), "")
        table.add_row(name, str(st["in"]), str(st["ok"]), str(st["errors"]),
                      f"{st['worker_seconds']:.1f}", str(st["videos_per_worker_second"] or "-"),
                      top[:60])
    console = Console()
    console.print(table)
    for name, st in summary["stages"].items():
        if st.get("notes"):  # e.g. decoder fallbacks; all of them are in _runs/run-*.json
            video, text = next(iter(st["notes_by_video"].items()))
            console.print(f"{name}: {st['notes']} videos with a note (the run summary in "
                          f"_runs/ lists them), e.g. {video}: {text[:100]}")


def plan(
    job: Annotated[str, typer.Argument(help="job file (YAML) or built-in job name")],
    set_: Overrides = None,
    sample: Annotated[int, typer.Option(help="videos to time through the stages")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Estimate rows, bytes and run time per table and stage, and check free space."""
    from vlprep.jobs.config import load_job
    from vlprep.pipeline.plan import plan_job

    logging.basicConfig(level=logging.WARNING, format="vlprep: %(levelname)s %(message)s")
    with reported(failed="plan failed"):
        estimate = plan_job(load_job(job, set_ or []), sample=sample)
    if as_json:
        typer.echo(json.dumps(estimate.to_dict()))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    console.print(f"{estimate.videos} videos; timed on {estimate.sampled} "
                  f"({estimate.failed_in_sample} failed)")
    stages = Table("stage", "setup s", "s/video", "cpus", "workers")
    for st in estimate.stages:
        stages.add_row(st.name, f"{st.setup_s:.2f}", f"{st.s_per_video:.3f}", f"{st.cpus:g}",
                       str(st.concurrency))
    console.print(stages)
    tables = Table("table", "rows", "MiB", "bytes/video")
    for t in estimate.tables:
        tables.add_row(t.name, str(t.rows), f"{t.bytes / 2**20:.2f}", f"{t.per_video_bytes:.0f}")
    console.print(tables)
    console.print(f"estimated run time: {estimate.seconds:.0f} s")
    for warning in estimate.warnings:
        console.print(f"[bold red]warning:[/] {warning}")
