"""The built-in demo job, run once by the real CLI: every table, the recipe in every file,
refusal of another recipe, and `plan`'s size estimate against what the run wrote."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from conftest import DEMO_TABLES
from e2e_helpers import read_rows, run_cli

VIDEOS = {"bigbuckbunny", "bikes", "carphone_distorted", "carphone_pristine"}


def _stage(recipe: dict, name: str) -> dict:
    return next(s for s in recipe["stages"] if s["name"] == name)


def test_demo_writes_every_table_for_every_clip(demo_store: Path):
    for table in DEMO_TABLES:
        rows = read_rows(demo_store, table)
        assert rows, table
        if table != "entities":
            assert {r["video_id"] for r in rows} == VIDEOS, table
    assert not (demo_store / "errors").exists() or not read_rows(demo_store, "errors")


def test_every_file_carries_the_recipe_and_checksums(demo_store: Path):
    stored = json.loads((demo_store / "_recipe.json").read_text())
    files = [f for t in DEMO_TABLES for f in sorted((demo_store / t).glob("*.parquet"))]
    assert len(files) >= len(DEMO_TABLES)
    for f in files:
        metadata = pq.read_schema(f).metadata
        recipe = json.loads(metadata[b"vlprep.recipe"])
        assert recipe == stored, f
        assert recipe["schema_version"] and recipe["vlprep_version"]
    for backbone in ("clip", "detect", "s3d", "prompter"):
        assert _stage(stored, backbone)["weights"] == {"init": "random", "seed": 0}
    s3d_frames = _stage(stored, "s3d_frames")["options"]
    assert s3d_frames["sampler"] == "videoclip" and s3d_frames["fps"] == 30.0
    shown = run_cli("inspect", str(demo_store), "--recipe")
    assert shown.returncode == 0 and '"fps": 30.0' in shown.stdout


@pytest.mark.parametrize("override, difference", [
    ("stages.s3d_frames.fps=15", "fps: 30.0 -> 15.0"),
    ("stages.clip.seed=1", "seed: 0 -> 1"),
])
def test_another_fps_or_checkpoint_is_refused(tmp_path: Path, demo_store: Path, override: str,
                                              difference: str):
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    before = {t: read_rows(store, t) for t in ("s3d", "clip_frames")}
    refused = run_cli("run", "demo", "--quiet", "--set", f"store={store}", "--set", override)
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert "another recipe" in lines[-1] and difference in lines[-1], refused.stderr
    assert {t: read_rows(store, t) for t in before} == before


def test_a_different_checkpoint_file_is_refused(tmp_path: Path, demo_store: Path,
                                                tiny_clip_dir: Path):
    store = tmp_path / "store"
    shutil.copytree(demo_store, store)
    refused = run_cli("run", "demo", "--quiet", "--set", f"store={store}",
                      "--set", "stages.clip.init=checkpoint",
                      "--set", f"stages.clip.checkpoint={tiny_clip_dir}")
    assert refused.returncode != 0
    assert "another recipe" in refused.stderr and "clip" in refused.stderr


def test_plan_of_the_demo_estimates_bytes_within_30_percent(tmp_path: Path, demo_store: Path):
    planned = run_cli("plan", "demo", "--json", "--sample", "2",
                      "--set", f"store={tmp_path / 'fresh'}",
                      timeout=600)
    assert planned.returncode == 0, planned.stderr
    estimate = json.loads(planned.stdout)
    assert {t["name"] for t in estimate["tables"]} >= set(DEMO_TABLES)
    for table in estimate["tables"]:
        files = list((demo_store / table["name"]).glob("*.parquet"))
        written = sum(f.stat().st_size for f in files)
        assert abs(table["bytes"] - written) <= 0.3 * written, (table, written)


@pytest.mark.parametrize("in_driver", [True, False])
def test_demo_entities_are_reproduced_by_another_run_with_other_workers(
        tmp_path: Path, demo_store: Path, monkeypatch, in_driver: bool):
    """Redo the demo's `entities` aggregate over its `texts` from scratch: in the driver, or
    in Ray tasks with two workers and one-row batches; the vocabulary is the same."""
    import ray

    from vlprep.jobs.config import load_job
    from vlprep.pipeline import executors, runner
    from vlprep.pipeline.collector import RunCounts
    from vlprep.store import COMMITS, Store

    store = tmp_path / "store"
    store.mkdir()
    shutil.copytree(demo_store / "texts", store / "texts")
    # the partitions' commits too (the aggregate reads committed texts only), not its own
    shutil.copytree(demo_store / COMMITS, store / COMMITS,
                    ignore=shutil.ignore_patterns("agg-*"))
    overrides = [f"store={store}", "stages.entities.batch_size=1",
                 "stages.entities.concurrency=2"]
    job = load_job("demo", overrides)
    spec = next(s for s in job.stages if s.name == "entities")
    if not in_driver:
        monkeypatch.setattr(executors, "AGGREGATE_IN_DRIVER_BYTES", 0)
    try:
        runner._run_aggregate(job, Store(str(store)), spec, RunCounts(),
                              executors.RayExecutor())
    finally:
        ray.shutdown()
    assert read_rows(store, "entities") == read_rows(demo_store, "entities")
