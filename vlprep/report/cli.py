"""`vlprep report STORE`: the command (mounted by vlprep.cli)."""

from __future__ import annotations

from typing import Annotated

import typer


def report(
    store: Annotated[str, typer.Argument(help="store path or URI (s3://...)")],
    out: Annotated[str | None, typer.Option(
        help="report folder (default: ./vlprep-report)")] = None,
    videos: Annotated[int, typer.Option(min=0, help="video cards drawn at random")] = 8,
    seed: Annotated[int, typer.Option(help="seed of the video draw")] = 0,
    open_: Annotated[bool, typer.Option("--open", help="open the report in a browser")] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="exit 1 when a health rule fails (NaN/Inf/zero embeddings, "
                        "too few rows)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
) -> None:
    """An offline HTML report of a store: summary, feature health, per-video cards."""
    import logging

    from vlprep.pipeline.store import StoreError
    from vlprep.report.build import MissingExtra, build_report

    logging.basicConfig(level=logging.WARNING, format="vlprep: %(levelname)s %(message)s")
    try:
        result = build_report(store, out or "vlprep-report", videos=videos, seed=seed,
                              quiet=quiet)
    except (StoreError, MissingExtra, OSError) as e:
        typer.echo(f"vlprep: {' '.join(str(e).split())}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"report: {result.index.resolve()}")
    for failure in result.failures:
        typer.echo(f"health: FAILED {failure}", err=True)
    if not result.failures:
        typer.echo("health: ok")
    if open_:
        import webbrowser

        webbrowser.open(result.index.resolve().as_uri())
    if check and result.failures:
        raise typer.Exit(1)
