"""Progress on the driver: videos done of total, rate, ETA, errors so far (rich)."""

from __future__ import annotations

from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)


class RunProgress:
    """A progress bar over videos; `quiet` turns it off (for logs and tests)."""

    def __init__(self, total: int, quiet: bool = False, label: str = "videos"):
        self.failed = 0
        self._total, self._label = total, label
        self._progress = None if quiet else Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:.2f} videos/s"),
            TextColumn("errors {task.fields[failed]}"),
            TimeElapsedColumn(), TimeRemainingColumn())
        self._task = None

    def __enter__(self) -> RunProgress:
        if self._progress is not None:
            self._progress.start()
            self._task = self._progress.add_task(self._label, total=self._total, failed=0,
                                                 rate=0.0)
        return self

    def advance(self, failed: bool = False) -> None:
        self.failed += failed
        if self._progress is not None:
            task = self._progress.tasks[0]
            rate = (task.completed + 1) / max(task.elapsed or 0.0, 1e-9)
            self._progress.update(self._task, advance=1, failed=self.failed, rate=rate)

    def __exit__(self, *exc) -> None:
        if self._progress is not None:
            self._progress.stop()
