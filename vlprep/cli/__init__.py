"""The `vlprep` command line (CONTRACT.md, CLI); the console script is `vlprep.cli:app`."""

from vlprep.cli.app import app

__all__ = ["app"]
