"""`vlprep report STORE`: an offline HTML report of a store (vlprep.report)."""

from __future__ import annotations

from typing import Annotated

import typer

from vlprep.cli.errors import reported, setup_logging
from vlprep.errors import FAILED_EXIT


def report(
    store: Annotated[str, typer.Argument(help="store path or URI (s3://...)")],
    out: Annotated[str, typer.Option(help="report folder")] = "vlprep-report",
    videos: Annotated[int, typer.Option(min=0, help="video cards drawn at random")] = 8,
    seed: Annotated[int, typer.Option(help="seed of the video draw")] = 0,
    open_: Annotated[bool, typer.Option("--open", help="open the report in a browser")] = False,
    check: Annotated[bool, typer.Option(
        "--check", help="exit 1 when a health rule fails (NaN/Inf/all-zero embeddings, "
                        "a table with fewer rows than its videos need)")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress display")] = False,
) -> None:
    """An offline HTML report of a store: summary, feature health, per-video cards."""
    from vlprep.report.build import build_report

    setup_logging(True)
    with reported(failed="report failed", usage=(OSError,)):
        result = build_report(store, out, videos=videos, seed=seed, quiet=quiet)
    typer.echo(f"report: {result.index.resolve()}")
    for failure in result.failures:
        typer.echo(f"health: FAILED {failure}", err=True)
    if not result.failures:
        typer.echo("health: ok")
    if open_:
        import webbrowser

        webbrowser.open(result.index.resolve().as_uri())
    if check and result.failures:
        raise typer.Exit(FAILED_EXIT)
