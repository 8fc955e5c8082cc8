"""`vlprep train METHOD` and `vlprep eval RUN` (CONTRACT.md, CLI)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vlprep.cli.errors import die, reported, setup_logging

# what the training code raises for a store, a run folder or options that cannot be used
USAGE = (ValueError, FileNotFoundError)


def train(
    method: Annotated[str, typer.Argument(help="videoclip, alpro or stoa")],
    store: Annotated[str, typer.Option(help="the feature store to train on")],
    out: Annotated[str | None, typer.Option(help="run folder (default ./runs/METHOD)")] = None,
    epochs: Annotated[int, typer.Option(min=1)] = 10,
    batch_size: Annotated[int | None, typer.Option(
        min=2, help="default: the method's (videoclip: 32 videos as MMPT; alpro, stoa: 64)")]
    = None,
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
    from vlprep.train.app import method_class, methods, parse_options, run_train
    from vlprep.train.method import TrainConfig

    setup_logging(quiet)
    if method not in methods():
        die(f"unknown method {method!r} (known: {', '.join(methods())})")
    if vtc_only and method != "alpro":
        die("--vtc-only applies to alpro only")
    with reported(usage=USAGE, failed="training failed"):
        options = parse_options(set_ or [])
        if vtc_only:
            options["vtc_only"] = True
        if batch_size is None:
            batch_size = method_class(method).default_batch_size
        cfg = TrainConfig(store=store, out=out or f"runs/{method}", epochs=epochs,
                          batch_size=batch_size, lr=lr, seed=seed, eval_fraction=eval_fraction,
                          workers=workers, device=device, threads=threads,
                          resume=not no_resume, quiet=quiet,
                          options=options)
        result = run_train(method, cfg)
    metrics = result["eval"]
    typer.echo(f"done: {method}, {epochs} epochs, {result['step']} steps; run: {result['out']}")
    if metrics.get("queries"):
        typer.echo(f"held-out text->video ({metrics['queries']} queries): R@1 {metrics['R@1']:.1f}"
                   f" R@5 {metrics['R@5']:.1f} R@10 {metrics['R@10']:.1f} MdR {metrics['MdR']:g}"
                   f" (chance R@1 {metrics['chance_R@1']:.1f})")
    if result.get("prompter"):
        typer.echo(f"prompter checkpoint: {result['prompter']}")


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
    from vlprep.train.app import run_eval

    setup_logging(True)
    if split not in (None, "eval", "train", "all"):
        die(f"--split {split}: expected eval, train or all")
    with reported(usage=USAGE, failed="evaluation failed"):
        result = run_eval(run, store, split, eval_fraction, device=device)
    if as_json:
        typer.echo(json.dumps(result))
    elif not result.get("queries"):
        die(f"no {result['split']} videos with a query text in {store}", code=1)
    else:
        typer.echo(f"{result['method']} on {store} ({result['split']}, {result['queries']} "
                   f"queries): R@1 {result['R@1']:.1f} R@5 {result['R@5']:.1f} "
                   f"R@10 {result['R@10']:.1f} MdR {result['MdR']:g} MnR {result['MnR']:.1f} "
                   f"(chance R@1 {result['chance_R@1']:.1f})")
