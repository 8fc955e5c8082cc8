"""One exception hierarchy for everything vlprep refuses, with its exit code and message style.

Every error a user can cause (a bad job file, a missing manifest, an unreadable store, a
checkpoint of the wrong layout, an export that cannot be written, a training run that cannot
start) is a :class:`VlprepError`, so the CLI maps all of them to one line on stderr and an
exit code in one place (:func:`exit_code`, :func:`one_line`). Per-video failures are
:class:`VideoError`: they become `errors` rows, never an exit.

The area classes also derive from the builtin they replaced (ValueError, RuntimeError), so
pydantic validators keep turning them into validation errors and callers that caught the
builtin keep working.
"""

from __future__ import annotations

USAGE_EXIT = 2  # the job, its inputs or its outputs cannot work as given
FAILED_EXIT = 1  # the job started and failed as a whole (an unexpected exception)


class VlprepError(Exception):
    """Base of every error vlprep raises on purpose; the message is one readable line."""

    area = "vlprep"
    exit_code = USAGE_EXIT


class JobError(VlprepError, ValueError):
    """A bad job file or override, or a stage list whose record keys cannot flow."""

    area = "job"


class ManifestError(VlprepError, ValueError):
    """An input manifest that cannot be read or has bad rows."""

    area = "manifest"

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(message.split("\n")).replace("\r", " "))


class ConvertError(ManifestError):
    """Unusable converter input (WebVid CSV, HowTo100M JSON, MSR-VTT JSON)."""


class StoreError(VlprepError, RuntimeError):
    """A store that cannot be read or written."""

    area = "store"


class RecipeError(StoreError, ValueError):
    """A store made with another recipe, or a checkpoint whose sha256 differs."""


class CheckpointError(VlprepError, ValueError):
    """Weights, tokenizers or NLP models that cannot be loaded as the stage expects."""

    area = "checkpoint"


class TokenizerError(CheckpointError):
    """A tokenizer option that cannot give a usable tokenizer."""


class NlpError(CheckpointError, RuntimeError):
    """spaCy or its model is missing; the message says what to install."""


class ExportError(VlprepError, ValueError):
    """A store (or a training run) that cannot be exported as asked."""

    area = "export"


class TrainError(VlprepError, ValueError):
    """A training or evaluation run that cannot start as asked."""

    area = "train"


class VideoError(VlprepError):
    """A readable, per-video failure: becomes an `errors` row, never a crash of the job.

    `code` classifies it for `vlprep scan`: missing, unreadable, no_video_stream, over_caps,
    timeout (the message says the details).
    """

    area = "video"

    def __init__(self, message: str, code: str = "unreadable"):
        super().__init__(message)
        self.code = code


def one_line(exc: BaseException) -> str:
    """The message as the CLI prints it: whitespace folded into one line."""
    text = " ".join(str(exc).split())
    if isinstance(exc, VlprepError):
        return text or exc.area
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def exit_code(exc: BaseException) -> int:
    """Usage errors (the job cannot work as given) exit 2, anything unexpected 1."""
    return exc.exit_code if isinstance(exc, VlprepError) else FAILED_EXIT
