"""`python -m vlprep` is the CLI."""

from vlprep.cli import app

app()
