"""Health rules for `vlprep report --check`: each failure names its table and column.

Rules: no embedding vector with NaN or Inf, none all zero, and every table written once per
video or per sampled frame holds at least the rows its videos need (the videos that passed
its stage, times frames per video or crops per video). `texts` and `trajectories` are not
counted: a video without text or without detections rightly has no rows there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from vlprep.report.health import Health
from vlprep.report.summary import Summary
from vlprep.stages.sample import DEFAULT_FRAMES


@dataclass(frozen=True)
class Failure:
    table: str
    column: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.table}.{self.column}" if self.column else self.table
        return f"{where}: {self.message}"


def _frames_per_video(recipe: dict[str, Any], frames_key: str) -> int:
    for stage in recipe.get("stages", []):
        opts = stage.get("options", {})
        if stage["kind"] == "sample" and opts.get("key", "frames") == frames_key:
            if opts.get("sampler") == "videoclip":
                return 1
            return int(opts.get("num_frames") or DEFAULT_FRAMES.get(opts.get("sampler"), 1))
    return 1


def rows_per_video(recipe: dict[str, Any], stage: dict[str, Any]) -> dict[str, int]:
    """Rows each video that passes `stage` must have in the tables it writes."""
    kind, opts = stage["kind"], stage.get("options", {})
    if kind in ("probe", "s3d"):
        return {"videos" if kind == "probe" else "s3d": 1}
    if kind in ("clip", "detect"):
        table = "clip_frames" if kind == "clip" else "regions"
        return {table: _frames_per_video(recipe, opts.get("frames", "frames"))}
    if kind == "prompter":
        return {"soft_labels": int(opts.get("num_crops", 1))}
    return {}


def check_store(summary: Summary, health: Health) -> list[Failure]:
    failures = []
    for col in health.columns:
        for count, what in ((col.nan, "NaN"), (col.inf, "Inf"), (col.zero, "all-zero")):
            if count:
                failures.append(Failure(col.table, col.column,
                                        f"{count} of {col.vectors} vectors are {what}"))
    stages = {s["name"]: s for s in (summary.recipe or {}).get("stages", [])}
    for flow in summary.flow:
        stage = stages.get(flow.name)
        if flow.aggregate or stage is None:
            continue
        for table, per_video in rows_per_video(summary.recipe or {}, stage).items():
            need = flow.ok * per_video
            have = health.rows.get(table, 0)
            if have < need:
                failures.append(Failure(table, None, f"{have} rows, but the {flow.ok} videos "
                                        f"that passed stage {flow.name} need at least {need}"))
    return failures
