"""Build a store's report: summary, feature health, video cards, then one HTML page."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vlprep.errors import VlprepError
from vlprep.report import drawing
from vlprep.report.cards import Card, make_cards
from vlprep.report.checks import Failure, check_store
from vlprep.report.health import NORM_EDGES, PROB_EDGES, Health, build_health
from vlprep.report.html import page
from vlprep.report.source import ReportSource
from vlprep.report.summary import Summary, build_summary, run_throughput


@dataclass
class Report:
    index: Path
    summary: Summary
    health: Health
    failures: list[Failure]
    cards: list[Card]


def health_plots(health: Health, assets: drawing.Assets) -> list[tuple[str, str]]:
    plots = []
    for col in health.columns:
        if col.vectors == 0:  # an optional column the job did not ask for (all null)
            continue
        nz = col.counts.nonzero()[0]
        lo, hi = (int(nz[0]), int(nz[-1]) + 1) if len(nz) else (0, len(col.counts))
        lo, hi = max(0, lo - 2), min(len(col.counts), hi + 2)
        title = f"{col.table}.{col.column}: vector norms"
        plots.append((title, drawing.histogram(assets, f"norm-{col.table}-{col.column}", title,
                                               col.counts[lo:hi], NORM_EDGES[lo:hi + 1],
                                               "L2 norm", log_x=True)))
    if health.entities:
        labels, counts = zip(*health.entities, strict=True)
        title = f"entities: top {len(labels)} of {health.entities_total}"
        plots.append((title, drawing.bar_chart(assets, "entities", title, labels, counts)))
    if health.soft_counts is not None:
        title = "soft labels: top probability per crop"
        plots.append((title, drawing.histogram(assets, "soft-top-prob", title,
                                               health.soft_counts, PROB_EDGES, "top prob")))
    return plots


class _Progress:
    """A rich progress display with one bar per phase; silent when quiet."""

    def __init__(self, quiet: bool):
        self.bar = None
        if not quiet:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

            self.bar = Progress(TextColumn("[bold]{task.description}"), BarColumn(),
                                MofNCompleteColumn(), transient=False)

    def __enter__(self) -> _Progress:
        if self.bar is not None:
            self.bar.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.bar is not None:
            self.bar.stop()

    def task(self, label: str, total: int | None):
        if self.bar is None:
            return lambda n: None
        task = self.bar.add_task(label, total=total)
        return lambda n: self.bar.advance(task, n)


class MissingExtra(VlprepError, ImportError):
    """An optional dependency of the report is not installed; the message says how."""


def require_extras() -> None:
    """Fail up front, with the fix, rather than halfway through a large store."""
    import importlib.util

    missing = [m for m in ("matplotlib", "faiss") if importlib.util.find_spec(m) is None]
    if missing:
        raise MissingExtra(f"vlprep report needs {' and '.join(missing)}: "
                           "pip install 'vlprep[report]'")


def build_report(uri: str, out: str | Path, videos: int = 8, seed: int = 0,
                 quiet: bool = True) -> Report:
    """Write `out`/index.html and `out`/assets/; raises StoreError for an unreadable store."""
    require_extras()
    src = ReportSource(uri)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    assets = drawing.Assets(out)
    assets.clear()  # a rebuilt report holds no stale images (only ours are removed)
    with _Progress(quiet) as progress:
        summary = build_summary(src, assets)
        rows = sum(v["rows"] for t, v in summary.tables.items()
                   if t in ("clip_frames", "regions", "s3d"))
        health = build_health(src, progress.task("feature health (rows)", rows or None))
        failures = check_store(summary, health)
        n_cards = min(videos, summary.videos_done) + min(len(summary.failed_videos), 20)
        cards = make_cards(src, assets, summary.failed_videos, videos, seed,
                           progress.task("video cards", n_cards))
    parts = {"columns": health.columns, "duplicates": health.duplicates,
             "plots": health_plots(health, assets), "soft_rows": health.soft_rows,
             "soft_low": health.soft_low}
    html = page(f"vlprep report: {uri}", summary, run_throughput(summary.runs), parts,
                failures, cards)
    index = out / "index.html"
    index.write_text(html, encoding="utf-8")
    return Report(index, summary, health, failures, cards)
