"""`vlprep inspect STORE` (CONTRACT.md, CLI)."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from vlprep.cli.errors import reported


def inspect(
    store: Annotated[str, typer.Argument(help="store path or URI")],
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
    recipe: Annotated[bool, typer.Option("--recipe", help="print how each table was made")] = False,
) -> None:
    """Tables, row counts, schemas and error counts by stage of a store."""
    from vlprep.pipeline.inspect import inspect_store, render, table_recipes

    with reported(failed="inspect failed"):
        summary = inspect_store(store)
        if recipe:
            summary["recipes"] = table_recipes(store)
    if recipe and not as_json:
        typer.echo(json.dumps(summary["recipes"], indent=2, sort_keys=True))
    elif as_json:
        typer.echo(json.dumps(summary))
    else:
        render(summary)
