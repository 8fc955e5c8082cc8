"""The report's summary page: tables, videos per stage, errors by reason, runs, the recipe,
and the manifest's distributions.

Per stage, videos in = ok + failed: a video that fails a stage gets one `errors` row and
enters no later stage; a later pass over the videos (after an aggregate stage such as the
entity vocabulary) starts with the videos of its own committed partitions, less every video
that failed before.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlprep.report.drawing import Assets, values_histogram
from vlprep.report.source import ReportSource

EXAMPLES_PER_REASON = 3


@dataclass
class StageFlow:
    name: str
    kind: str
    tables: tuple[str, ...]
    entered: int
    failed: int
    aggregate: bool = False

    @property
    def ok(self) -> int:
        return self.entered - self.failed


@dataclass
class ErrorReason:
    stage: str
    reason: str
    count: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)  # (video_id, path)


@dataclass
class Summary:
    store: str
    videos_total: int
    videos_done: int
    partitions_total: int
    partitions_done: int
    tables: dict[str, dict[str, int]]
    flow: list[StageFlow]
    errors: list[ErrorReason]
    failed_videos: dict[str, list[str]]  # video -> stages it failed
    runs: list[dict[str, Any]]
    recipe: dict[str, Any] | None
    plots: list[tuple[str, str]]  # (title, asset)

    @property
    def random_stages(self) -> list[str]:
        return [s["name"] for s in (self.recipe or {}).get("stages", [])
                if (s.get("weights") or {}).get("init") == "random"]


def stage_tables() -> dict[str, tuple[str, ...]]:
    from vlprep.stages import stage_classes

    return {kind: tuple(cls.tables) for kind, cls in stage_classes().items()}


def pass_partitions(src: ReportSource) -> dict[int, set[int]]:
    """Committed input partitions per pass over the videos (`part-*`, `ph<N>-part-*`)."""
    out: dict[int, set[int]] = defaultdict(set)
    for commit in src.store.commits():
        unit = commit.unit
        if unit.startswith("ph") and "-part-" in unit:
            out[int(unit[2:].split("-", 1)[0])].add(int(unit.rsplit("-", 1)[1]))
        elif unit.startswith("part-"):
            out[0].add(int(unit[5:]))
    return dict(out)


def read_errors(src: ReportSource) -> tuple[list[ErrorReason], dict[str, list[str]]]:
    """Errors grouped by (stage, reason), most frequent first, with example videos."""
    reasons: dict[tuple[str, str], ErrorReason] = {}
    failed: dict[str, list[str]] = defaultdict(list)
    if "errors" not in src.tables():
        return [], {}
    cols = [c for c in ("video_id", "stage", "error", "path") if c in src.columns("errors")]
    for batch in src.batches("errors", cols, 4096):
        data = batch.to_pydict()
        paths = data.get("path") or [""] * batch.num_rows
        for vid, stage, error, path in zip(data["video_id"], data["stage"], data["error"],
                                           paths, strict=True):
            item = reasons.setdefault((stage, error), ErrorReason(stage, error))
            item.count += 1
            if len(item.examples) < EXAMPLES_PER_REASON:
                item.examples.append((vid, path or ""))
            failed[vid].append(stage)
    return sorted(reasons.values(), key=lambda r: (-r.count, r.stage, r.reason)), dict(failed)


def stage_flow(recipe: dict[str, Any] | None, passes: dict[int, set[int]],
               sizes: list[int], partition_of: dict[str, int],
               failed: dict[str, list[str]]) -> list[StageFlow]:
    """Videos in / failed per stage (in = ok + failed), pass by pass; `partition_of` maps
    each failed video to its input partition."""
    if not recipe:
        return []
    tables = stage_tables()
    by_stage: dict[str, set[str]] = defaultdict(set)
    for vid, stages in failed.items():
        for s in stages:
            by_stage[s].add(vid)
    flow: list[StageFlow] = []
    failed_so_far: set[str] = set()
    pass_index = 0
    for stage in recipe.get("stages", []):
        kind = stage["kind"]
        if stage.get("aggregate"):
            flow.append(StageFlow(stage["name"], kind, tables.get(kind, ()), 0, 0, True))
            pass_index += 1
            continue
        done = passes.get(pass_index, set())
        videos = sum(sizes[p] for p in done if p < len(sizes))
        gone = sum(1 for v in failed_so_far if partition_of.get(v) in done)
        mine = {v for v in by_stage.get(stage["name"], set()) - failed_so_far
                if partition_of.get(v) in done}
        flow.append(StageFlow(stage["name"], kind, tables.get(kind, ()), videos - gone,
                              len(mine)))
        failed_so_far |= by_stage.get(stage["name"], set())
    return flow


def run_throughput(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per stage over all runs: videos in, worker seconds, videos per worker second."""
    out: dict[str, dict[str, float]] = {}
    for run in runs:
        for name, st in (run.get("stages") or {}).items():
            agg = out.setdefault(name, {"in": 0, "ok": 0, "errors": 0, "worker_seconds": 0.0})
            for key in ("in", "ok", "errors", "worker_seconds"):
                agg[key] += st.get(key) or 0
    for agg in out.values():
        agg["videos_per_worker_second"] = (agg["in"] / agg["worker_seconds"]
                                           if agg["worker_seconds"] else float("nan"))
    return out


MANIFEST_PLOTS = (("duration", "duration (s)", 1.0), ("file_size", "file size (MB)", 1e-6),
                  ("fps", "frames per second", 1.0), ("height", "height (px)", 1.0))


def manifest_plots(src: ReportSource, assets: Assets) -> list[tuple[str, str]]:
    """Distributions of the probe facts in `videos` (a few numeric columns, streamed)."""
    if "videos" not in src.tables():
        return []
    cols = [c for c, _, _ in MANIFEST_PLOTS if c in src.columns("videos")]
    values: dict[str, list[np.ndarray]] = {c: [] for c in cols}
    for batch in src.batches("videos", cols, 65536):
        for c in cols:
            values[c].append(batch.column(c).to_numpy(zero_copy_only=False).astype(np.float64))
    plots = []
    for column, label, scale in MANIFEST_PLOTS:
        if column in values:
            data = np.concatenate(values[column]) * scale if values[column] else np.zeros(0)
            plots.append((label, values_histogram(assets, f"manifest-{column}",
                                                  f"videos: {label}", data, label)))
    return plots


def build_summary(src: ReportSource, assets: Assets) -> Summary:
    errors, failed = read_errors(src)
    passes = pass_partitions(src)
    sizes = [int(n) for n in src.index.get("sizes", [])]
    partition_of = src.partition_of(set(failed))
    return Summary(
        store=src.uri,
        videos_total=int(src.index.get("videos", 0)),
        videos_done=sum(sizes[p] for p in passes.get(0, set()) if p < len(sizes)),
        partitions_total=len(sizes),
        partitions_done=len(passes.get(0, set())),
        tables={t: src.table_stats(t) for t in src.tables()},
        flow=stage_flow(src.recipe, passes, sizes, partition_of, failed),
        errors=errors,
        failed_videos=failed,
        runs=src.runs(),
        recipe=src.recipe,
        plots=manifest_plots(src, assets),
    )
