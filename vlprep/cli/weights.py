"""`vlprep weights verify PATH`: a checkpoint's sha256, as job files pin it."""

from __future__ import annotations

from typing import Annotated

import typer

from vlprep.cli.errors import die, reported

app = typer.Typer(no_args_is_help=True, help="Checkpoint checksums.")


@app.command("verify")
def verify(
    path: Annotated[str, typer.Argument(help="checkpoint file or model directory")],
    expect: Annotated[str | None, typer.Option(help="the sha256 it must have")] = None,
) -> None:
    """Print a checkpoint's sha256 (a directory: over its files); exit 1 if it differs."""
    from vlprep.pipeline.provenance import checkpoint_sha256

    with reported(usage=(OSError,)):
        digest = checkpoint_sha256(path)
    if expect and expect.lower() != digest:
        die(f"{path}: sha256 {digest} does not match the expected {expect}", code=1)
    typer.echo(f"{digest}  {path}")
