"""End to end through the real CLI and local Ray: the issue's acceptance checks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
from e2e_helpers import VLPREP, read_rows, run_cli, store_files, write_job
from media import sample_videos

from vlprep.failpoints import ENV as FAILPOINT_ENV


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    """The four real clips, plus a zero-byte file and a text file named .mp4."""
    d = tmp_path_factory.mktemp("inputs")
    (d / "empty.mp4").write_bytes(b"")
    (d / "notes.mp4").write_text("this is not a video\n" * 20)
    rows = [{"video_id": k, "path": str(v), "caption": f"a clip called {k}"}
            for k, v in sorted(sample_videos().items())]
    rows += [{"video_id": "empty", "path": "empty.mp4", "caption": "nothing"},
             {"video_id": "notes", "path": "notes.mp4"}]
    path = d / "manifest.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture(scope="module")
def finished_store(tmp_path_factory, manifest) -> Path:
    d = tmp_path_factory.mktemp("run")
    job = write_job(d / "job.yaml", manifest, d / "store")
    result = run_cli("run", str(job), "--quiet")
    assert result.returncode == 0, result.stderr
    return d / "store"


def test_good_videos_written_bad_ones_are_error_rows(finished_store):
    videos = read_rows(finished_store, "videos")
    assert sorted(r["video_id"] for r in videos) == sorted(sample_videos())
    frames = read_rows(finished_store, "clip_frames")
    per_video = {v: sum(r["video_id"] == v for r in frames) for v in sample_videos()}
    assert per_video == {v: 8 for v in sample_videos()}
    errors = {r["video_id"]: r for r in read_rows(finished_store, "errors")}
    assert set(errors) == {"empty", "notes"}
    assert all(e["stage"] == "probe" for e in errors.values())
    assert "empty" in errors["empty"]["error"]
    texts = read_rows(finished_store, "texts")
    assert {r["video_id"] for r in texts} == set(sample_videos())


def test_inspect_json_counts(finished_store):
    result = run_cli("inspect", str(finished_store), "--json")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["tables"]["clip_frames"]["rows"] == 32
    assert summary["tables"]["videos"]["rows"] == 4
    assert "embedding" in summary["tables"]["clip_frames"]["columns"]
    assert summary["errors_by_stage"] == {"probe": 2}
    assert summary["videos"] == {"total": 6, "done": 6}
    flow = {s["stage"]: (s["in"], s["ok"], s["errors"]) for s in summary["stages"]}
    assert flow == {"probe": (6, 4, 2), "texts": (4, 4, 0), "sample": (4, 4, 0),
                    "clip": (4, 4, 0)}
    runs = list((finished_store / "_runs").glob("run-*.json"))
    assert len(runs) == 1
    run = json.loads(runs[0].read_text())
    assert run["stages"]["probe"]["in"] == 6 and run["stages"]["probe"]["errors"] == 2
    assert run["stages"]["clip"]["ok"] == 4 and run["stages"]["clip"]["worker_seconds"] > 0


def test_rerun_adds_no_rows(tmp_path, manifest, finished_store):
    before = {t: read_rows(finished_store, t) for t in ("videos", "clip_frames", "texts", "errors")}
    files = store_files(finished_store)
    result = run_cli("run", str(Path(finished_store).parent / "job.yaml"), "--quiet")
    assert result.returncode == 0, result.stderr
    assert "0 videos processed" in result.stdout and "3 already committed" in result.stdout
    assert store_files(finished_store) == files
    assert {t: read_rows(finished_store, t) for t in before} == before


def _resume_matches_uninterrupted(store: Path, job: Path, reference: Path) -> None:
    commits = store / "_commits"
    done_before = len(list(commits.glob("*.json"))) if commits.is_dir() else 0
    assert done_before < 6, "the run finished before it was killed"
    result = run_cli("run", str(job), "--quiet")
    assert result.returncode == 0, result.stderr
    assert f"{done_before} already committed" in result.stdout
    for table in ("videos", "clip_frames", "texts", "errors"):
        assert read_rows(store, table) == read_rows(reference, table), table
    leftovers = [f for f in store_files(store) if f.startswith("_tmp") or f.endswith(".tmp")]
    assert leftovers == []


def test_sigkill_of_the_run_then_resume_gives_the_same_rows(tmp_path, manifest, finished_store):
    """SIGKILL from outside (driver and local Ray at once) after the 2nd commit."""
    job = write_job(tmp_path / "job.yaml", manifest, tmp_path / "store", partition_size=1)
    env = {**os.environ, FAILPOINT_ENV: "store.committed:2:sleep=30"}  # stall, to be killed
    proc = subprocess.Popen([*VLPREP, "run", str(job), "--quiet"], start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    commits = tmp_path / "store" / "_commits"
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and proc.poll() is None:
        if commits.is_dir() and len(list(commits.glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(list(commits.glob("*.json"))) == 2
    _resume_matches_uninterrupted(tmp_path / "store", job, finished_store)


def test_readers_of_every_table(finished_store):
    import duckdb
    import pandas as pd
    import pyarrow.dataset as pads

    for table in ("videos", "clip_frames", "texts", "errors"):
        path = finished_store / table
        n = pads.dataset(path, format="parquet").count_rows()
        assert len(pd.read_parquet(path)) == n
        got = duckdb.sql(f"select count(*) from read_parquet('{path}/*.parquet')").fetchone()[0]
        assert got == n
        try:
            import polars as pl
        except ImportError:
            pl = None
        if pl is not None:
            assert pl.read_parquet(f"{path}/*.parquet").height == n
    from datasets import load_dataset

    frames = load_dataset("parquet", data_files=str(finished_store / "clip_frames/*.parquet"),
                          split="train")
    assert len(frames) == 32 and len(frames[0]["embedding"]) == 16


@pytest.mark.parametrize("problem", ["bad_key", "bad_type", "missing_manifest", "duplicates"])
def test_bad_jobs_exit_nonzero_with_one_line(tmp_path, manifest, problem):
    job = write_job(tmp_path / "job.yaml", manifest, tmp_path / "store")
    args = ["run", str(job), "--quiet"]
    if problem == "bad_key":
        args += ["--set", "stages.clip.batch_sze=3"]
        expect = "stages.clip.batch_sze: unknown key"
    elif problem == "bad_type":
        args += ["--set", "partition_size=many"]
        expect = "partition_size"
    elif problem == "missing_manifest":
        args += ["--set", f"manifest={tmp_path / 'nope.csv'}"]
        expect = "nope.csv"
    else:
        dup = tmp_path / "dup.csv"
        dup.write_text("video_id,path\na,/x.mp4\nb,/y.mp4\na,/z.mp4\n")
        args += ["--set", f"manifest={dup}"]
        expect = "duplicate"
    result = run_cli(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], result.stderr


def test_tables_carry_the_recipe(finished_store):
    result = run_cli("inspect", str(finished_store), "--recipe", "--json")
    assert result.returncode == 0, result.stderr
    recipes = json.loads(result.stdout)["recipes"]
    assert set(recipes) >= {"_store", "videos", "clip_frames", "texts", "errors"}
    for table in ("videos", "clip_frames"):
        stages = {s["name"]: s for s in recipes[table]["recipe"]["stages"]}
        assert stages["sample"]["options"]["num_frames"] == 8
        assert stages["clip"]["weights"] == {"init": "random", "seed": 0}
        assert recipes[table]["schema_version"] == "1"


def test_another_recipe_is_refused_then_new_store_replaces(tmp_path, manifest, finished_store):
    import shutil

    store = tmp_path / "store"
    shutil.copytree(finished_store, store)
    job = write_job(tmp_path / "job.yaml", manifest, store)
    refused = run_cli("run", str(job), "--quiet", "--set", "stages.sample.num_frames=4")
    assert refused.returncode != 0
    lines = refused.stderr.strip().splitlines()
    assert len(lines) == 1 and "another recipe" in lines[0] and "num_frames: 8 -> 4" in lines[0]
    assert read_rows(store, "clip_frames") == read_rows(finished_store, "clip_frames")
    replaced = run_cli("run", str(job), "--quiet", "--set", "stages.sample.num_frames=4",
                       "--new-store")
    assert replaced.returncode == 0, replaced.stderr
    assert len(read_rows(store, "clip_frames")) == 4 * 4
