"""How every command reports a failure: one line on stderr, `vlprep: <reason>`, and the exit
code of the error's class (vlprep.errors), so scripts can tell a usage problem (2) from a job
that failed as a whole (1)."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import typer

from vlprep.errors import FAILED_EXIT, USAGE_EXIT, VlprepError, exit_code, one_line

log = logging.getLogger("vlprep")


MAX_MESSAGE = 500  # Arrow errors can quote whole rows


def die(message: object, code: int = USAGE_EXIT) -> NoReturn:
    """Print `vlprep: MESSAGE` (one line, shortened) on stderr and exit with `code`."""
    text = " ".join(str(message).split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    typer.echo(f"vlprep: {text}", err=True)
    raise typer.Exit(code)


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


@contextmanager
def reported(prefix: str = "", usage: tuple[type[BaseException], ...] = (),
             failed: str = "failed") -> Iterator[None]:
    """Run a command's work: a VlprepError (or one of `usage`, builtin errors the command's
    libraries raise for bad input) exits with its code and one line; anything else exits 1
    with `<failed>: <type>: <message>` (the traceback goes to the debug log)."""
    try:
        yield
    except (typer.Exit, typer.Abort, KeyboardInterrupt):
        raise
    except VlprepError as e:
        die(prefix + one_line(e), exit_code(e))
    except usage as e:
        die(prefix + _first_line(e), USAGE_EXIT)
    except Exception as e:  # noqa: BLE001 - one line, non-zero, never a traceback
        log.debug("command failed", exc_info=True)
        die(f"{prefix}{failed}: {one_line(e)}", FAILED_EXIT)


def setup_logging(quiet: bool) -> None:
    logging.basicConfig(level=logging.WARNING if quiet else logging.INFO,
                        format="vlprep: %(levelname)s %(message)s", stream=sys.stderr)
