"""The `vlprep` command line (CONTRACT.md, CLI)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Annotated, NoReturn

import typer

app = typer.Typer(no_args_is_help=True, add_completion=False,
                  help="Offline preprocessing for video-language pretraining.")
log = logging.getLogger("vlprep")


def _die(message: str, code: int = 2) -> NoReturn:
    typer.echo(f"vlprep: {' '.join(str(message).split())}", err=True)
    raise typer.Exit(code)


def _setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="vlprep: %(levelname)s %(message)s", stream=sys.stderr)


@app.command()
def run(
    job: Annotated[str, typer.Argument(help="job file (YAML) or built-in job name, e.g. demo")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override KEY=VALUE")] = None,
    address: Annotated[str | None, typer.Option(help="Ray cluster (default: local)")] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
    new_store: Annotated[bool, typer.Option(
        "--new-store", help="delete the store's contents first (to change its recipe)")] = False,
) -> None:
    """Run a job: manifest in, store out. Failed videos become rows of `errors`."""
    from vlprep.jobs.config import JobError, load_job
    from vlprep.jobs.manifest import ManifestError
    from vlprep.pipeline.inspect import inspect_store, render
    from vlprep.pipeline.provenance import RecipeError
    from vlprep.pipeline.runner import run_job, run_summary
    from vlprep.pipeline.store import StoreError

    _setup_logging(quiet)
    try:
        loaded = load_job(job, set_ or [])
        result = run_job(loaded, address=address, quiet=quiet, new_store=new_store)
    except (JobError, ManifestError, StoreError, RecipeError) as e:
        _die(str(e))
    except Exception as e:  # noqa: BLE001 - the job failed as a whole: one line, non-zero
        log.debug("job failed", exc_info=True)
        _die(f"job failed: {type(e).__name__}: {e}", code=1)
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
    Console().print(table)


@app.command()
def inspect(
    store: Annotated[str, typer.Argument(help="store path or URI")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    recipe: Annotated[bool, typer.Option("--recipe", help="print how each table was made")] = False,
) -> None:
    """Tables, row counts, schemas and error counts by stage of a store."""
    from vlprep.pipeline.inspect import inspect_store, render, table_recipes
    from vlprep.pipeline.store import StoreError

    try:
        summary = inspect_store(store)
        if recipe:
            summary["recipes"] = table_recipes(store)
    except StoreError as e:
        _die(str(e))
    if recipe and not as_json:
        typer.echo(json.dumps(summary["recipes"], indent=2, sort_keys=True))
    elif as_json:
        typer.echo(json.dumps(summary))
    else:
        render(summary)


@app.command()
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
    from vlprep.jobs.config import JobError, load_job
    from vlprep.jobs.manifest import ManifestError
    from vlprep.pipeline.scan import STATUSES, scan_manifest

    caps: dict = {}
    try:
        if job:
            probes = [s for s in load_job(job).stages if s.cls.kind == "probe"]
            caps = probes[0].options.model_dump() if probes else {}
        given = {"max_file_bytes": max_file_bytes, "max_duration": max_duration,
                 "max_pixels": max_pixels}
        caps.update({k: v for k, v in given.items() if v is not None})
        result = scan_manifest(manifest, out, caps, workers)
    except (JobError, ManifestError) as e:
        _die(str(e))
    except ValueError as e:  # caps the probe stage does not know
        _die(f"scan: {' '.join(str(e).split())}")
    counts = result.counts
    typer.echo("  ".join(f"{s} {counts.get(s, 0)}" for s in STATUSES))
    typer.echo(f"report: {result.report}\nusable rows: {result.manifest}")


@app.command()
def plan(
    job: Annotated[str, typer.Argument(help="job file (YAML) or built-in job name")],
    set_: Annotated[list[str] | None, typer.Option("--set", help="override KEY=VALUE")] = None,
    sample: Annotated[int, typer.Option(help="videos to time through the stages")] = 8,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Estimate rows, bytes and run time per table and stage, and check free space."""
    from vlprep.jobs.config import JobError, load_job
    from vlprep.jobs.manifest import ManifestError
    from vlprep.pipeline.plan import plan_job

    logging.basicConfig(level=logging.WARNING, format="vlprep: %(levelname)s %(message)s")
    try:
        estimate = plan_job(load_job(job, set_ or []), sample=sample)
    except (JobError, ManifestError) as e:
        _die(str(e))
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


@app.command()
def train(
    method: Annotated[str, typer.Argument(help="videoclip, alpro or stoa")],
    store: Annotated[str, typer.Option(help="the feature store to train on")],
    out: Annotated[str | None, typer.Option(help="run folder (default ./runs/METHOD)")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int, typer.Option(min=2)] = 64,
    lr: Annotated[float, typer.Option(min=0.0)] = 5e-4,
    seed: Annotated[int, typer.Option()] = 0,
    eval_fraction: Annotated[float, typer.Option(
        min=0.0, max=0.9, help="videos held out for retrieval evaluation")] = 0.2,
    workers: Annotated[int, typer.Option(min=0, help="DataLoader worker processes")] = 0,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda[:N]")] = "auto",
    threads: Annotated[int, typer.Option(min=0, help="torch CPU threads (0: torch's default)")] = 1,
    vtc_only: Annotated[bool, typer.Option(
        "--vtc-only", help="alpro: VTC only; exports the prompter checkpoint")] = False,
    set_: Annotated[list[str] | None, typer.Option(
        "--set", help="method option KEY=VALUE, e.g. dim=128")] = None,
    no_resume: Annotated[bool, typer.Option(
        "--no-resume", help="start over instead of resuming the run folder")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
) -> None:
    """Train a method on a store; checkpoints (safetensors) and metrics.jsonl go to --out."""
    from vlprep.pipeline.store import StoreError
    from vlprep.train.app import methods, parse_options, run_train
    from vlprep.train.method import TrainConfig

    _setup_logging(quiet)
    if method not in methods():
        _die(f"unknown method {method!r} (known: {', '.join(methods())})")
    try:
        options = parse_options(set_ or [])
        if vtc_only:
            if method != "alpro":
                _die("--vtc-only applies to alpro only")
            options["vtc_only"] = True
        cfg = TrainConfig(store=store, out=out or f"runs/{method}", epochs=epochs,
                          batch_size=batch_size, lr=lr, seed=seed, eval_fraction=eval_fraction,
                          workers=workers, device=device, threads=threads,
                          resume=not no_resume, quiet=quiet,
                          options=options)
        result = run_train(method, cfg)
    except (StoreError, ValueError, FileNotFoundError) as e:
        _die(str(e))
    metrics = result["eval"]
    typer.echo(f"done: {method}, {epochs} epochs, {result['step']} steps; run: {result['out']}")
    if metrics.get("queries"):
        typer.echo(f"held-out text->video ({metrics['queries']} queries): R@1 {metrics['R@1']:.1f}"
                   f" R@5 {metrics['R@5']:.1f} R@10 {metrics['R@10']:.1f} MdR {metrics['MdR']:g}"
                   f" (chance R@1 {metrics['chance_R@1']:.1f})")
    if result.get("prompter"):
        typer.echo(f"prompter checkpoint: {result['prompter']}")


@app.command("eval")
def eval_(
    run: Annotated[str, typer.Argument(help="run folder, epoch folder or model.safetensors")],
    store: Annotated[str, typer.Option(help="store to evaluate on")],
    split: Annotated[str | None, typer.Option(
        help="eval (the run's held-out videos), train or all")] = None,
    eval_fraction: Annotated[float | None, typer.Option(
        min=0.0, max=1.0, help="override the run's held-out share")] = None,
    device: Annotated[str, typer.Option()] = "auto",
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Zero-shot text-to-video retrieval: R@1/5/10 and median rank (MSR-VTT protocol)."""
    from vlprep.pipeline.store import StoreError
    from vlprep.train.app import run_eval

    _setup_logging(True)
    if split not in (None, "eval", "train", "all"):
        _die(f"--split {split}: expected eval, train or all")
    try:
        result = run_eval(run, store, split, eval_fraction, device=device)
    except (StoreError, ValueError, FileNotFoundError) as e:
        _die(str(e))
    if as_json:
        typer.echo(json.dumps(result))
    elif not result.get("queries"):
        _die(f"no {result['split']} videos with a query text in {store}", code=1)
    else:
        typer.echo(f"{result['method']} on {store} ({result['split']}, {result['queries']} "
                   f"queries): R@1 {result['R@1']:.1f} R@5 {result['R@5']:.1f} "
                   f"R@10 {result['R@10']:.1f} MdR {result['MdR']:g} MnR {result['MnR']:.1f} "
                   f"(chance R@1 {result['chance_R@1']:.1f})")


weights_app = typer.Typer(no_args_is_help=True, help="Checkpoint checksums.")
app.add_typer(weights_app, name="weights")


@weights_app.command("verify")
def weights_verify(
    path: Annotated[str, typer.Argument(help="checkpoint file or model directory")],
    expect: Annotated[str | None, typer.Option(help="the sha256 it must have")] = None,
) -> None:
    """Print a checkpoint's sha256 (a directory: over its files); exit 1 if it differs."""
    from vlprep.pipeline.provenance import RecipeError, checkpoint_sha256

    try:
        digest = checkpoint_sha256(path)
    except (RecipeError, OSError) as e:
        _die(str(e))
    if expect and expect.lower() != digest:
        _die(f"{path}: sha256 {digest} does not match the expected {expect}", code=1)
    typer.echo(f"{digest}  {path}")


def _mount_subcommands() -> None:
    from vlprep.report.cli import report

    app.command()(report)
    from vlprep.jobs.convert_cli import app as manifest_app

    app.add_typer(manifest_app, name="manifest",
                  help="Convert public dataset formats (WebVid, HowTo100M, MSR-VTT) to a manifest.")
    from vlprep.export.cli import app as export_app  # format modules load inside its commands

    app.add_typer(export_app, name="export",
                  help="Write a store as MMPT, ALPRO, STOA-VLP or VinVL read their inputs.")


_mount_subcommands()
