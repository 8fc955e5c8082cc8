"""Crash-exact resume: killed anywhere, a re-run ends with exactly the uninterrupted rows."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import yaml
from e2e_helpers import read_rows, run_cli, store_files, write_job
from media import sample_videos

from vlprep.failpoints import ENV as FAILPOINT_ENV
from vlprep.pipeline.journal import CRASH_REASON

TABLES = ("videos", "clip_frames", "texts", "errors")


@pytest.fixture(scope="module")
def manifest(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("resume-inputs")
    clips = sample_videos()
    rows = [{"video_id": k, "path": str(clips[k]), "caption": f"clip {k}"}
            for k in ("bikes", "carphone_distorted", "carphone_pristine")]
    rows.append({"video_id": "broken", "path": str(d / "broken.mp4"), "caption": "none"})
    (d / "broken.mp4").write_bytes(b"\0" * 1000)
    path = d / "m.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _job(tmp_path: Path, manifest: Path, name: str) -> Path:
    return write_job(tmp_path / f"{name}.yaml", manifest, tmp_path / name, partition_size=1,
                     num_frames=2)


@pytest.fixture(scope="module")
def reference(tmp_path_factory, manifest) -> Path:
    d = tmp_path_factory.mktemp("resume-ref")
    result = run_cli("run", str(_job(d, manifest, "store")), "--quiet")
    assert result.returncode == 0, result.stderr
    return d / "store"


def _rows(store: Path) -> dict[str, list[dict]]:
    return {t: read_rows(store, t) for t in TABLES}


def _assert_clean(store: Path) -> None:
    assert [f for f in store_files(store) if f.startswith("_tmp") or ".tmp" in f] == []


KILL_POINTS = [
    "inputs.partition_written:2:kill",      # while the manifest is cut into partitions
    "collector.partition_complete:2:kill",  # a partition whole in memory, nothing written
    "store.first_file_moved:3:kill",        # half of a partition's files renamed into place
    "store.files_moved:1:kill",             # all renamed, no commit record yet
    "store.committed:2:kill",               # commit record written, temporaries still there
]


@pytest.mark.parametrize("point", KILL_POINTS)
def test_driver_sigkill_at_each_point(tmp_path, manifest, reference, point):
    job = _job(tmp_path, manifest, "store")
    killed = run_cli("run", str(job), "--quiet", env={**os.environ, FAILPOINT_ENV: point})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    if point.startswith("store.files_moved"):  # files in place, no commit record: orphans
        store = tmp_path / "store"
        committed = {f"{t}/{n}" for c in (store / "_commits").glob("*.json")
                     for t, names in json.loads(c.read_text())["files"].items() for n in names}
        in_tables = {f for f in store_files(store) if not f.startswith("_")}
        assert in_tables - committed, "the kill left no uncommitted files to recover"
    resumed = run_cli("run", str(job), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert _rows(tmp_path / "store") == _rows(reference)
    _assert_clean(tmp_path / "store")


def test_a_killed_worker_is_retried_without_loss_or_duplicates(tmp_path, manifest, reference):
    job = _job(tmp_path, manifest, "store")
    marker = tmp_path / "killed-once"
    env = {**os.environ, FAILPOINT_ENV: f"video:carphone_pristine:0:kill-once={marker}"}
    result = run_cli("run", str(job), "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert marker.exists()  # a worker really died mid-batch
    assert _rows(tmp_path / "store") == _rows(reference)
    _assert_clean(tmp_path / "store")


def test_a_worker_killed_while_writing_a_file_never_commits_it(tmp_path, manifest, reference):
    """The pass's last stage writes its batch's files on the worker: SIGKILL it while a file
    is open (first row group written, no footer yet). Ray retries the batch, which writes its
    own files under a new attempt folder; only those are committed, the half file is not."""
    job = _job(tmp_path, manifest, "store")
    marker = tmp_path / "killed-once"
    env = {**os.environ, FAILPOINT_ENV: f"writer.file_open:0:kill-once={marker}"}
    result = run_cli("run", str(job), "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    half = Path(marker.read_text())  # the file the worker was writing when it died
    store = tmp_path / "store"
    assert half.is_relative_to(store / "_tmp" / "w") and not half.exists()
    assert _rows(store) == _rows(reference)
    committed = {f"{t}/{n}" for c in (store / "_commits").glob("*.json")
                 for t, names in json.loads(c.read_text())["files"].items() for n in names}
    assert {f for f in store_files(store) if not f.startswith("_")} == committed
    _assert_clean(store)



def test_a_compactor_killed_while_compacting_is_restarted_and_commits_once(
        tmp_path, manifest, reference):
    """Partitions of two videos, written one video per batch: each partition's two files
    per table are compacted on a compaction actor. SIGKILL the actor in its first
    compaction: Ray restarts it and retries the compaction, and only the retry's files are
    committed, one per table and partition."""
    job = write_job(tmp_path / "job.yaml", manifest, tmp_path / "store", partition_size=2,
                    num_frames=2)
    body = yaml.safe_load(job.read_text())
    body["stages"]["clip"]["batch_size"] = 1
    job.write_text(yaml.safe_dump(body, sort_keys=False))
    marker = tmp_path / "killed-once"
    env = {**os.environ, FAILPOINT_ENV: f"writer.compacting:0:kill-once={marker}"}
    result = run_cli("run", str(job), "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    assert marker.exists()  # a compaction ran and was killed
    store = tmp_path / "store"
    assert _rows(store) == _rows(reference)
    commits = [json.loads(c.read_text()) for c in (store / "_commits").glob("part-*.json")]
    assert len(commits) == 2 and all(len(names) == 1 for c in commits
                                     for names in c["files"].values())
    committed = {f"{t}/{n}" for c in commits for t, names in c["files"].items() for n in names}
    assert {f for f in store_files(store) if not f.startswith("_")} == committed
    _assert_clean(store)

def test_a_video_that_always_kills_its_worker_becomes_an_error_row(tmp_path, manifest, reference):
    job = _job(tmp_path, manifest, "store")
    env = {**os.environ, FAILPOINT_ENV: "video:bikes:0:kill"}
    result = run_cli("run", str(job), "--quiet", env=env)
    assert result.returncode == 0, result.stderr
    errors = {r["video_id"]: r for r in read_rows(tmp_path / "store", "errors")}
    assert errors["bikes"]["error"] == CRASH_REASON and errors["bikes"]["stage"] == "probe"
    for table in ("videos", "clip_frames", "texts"):
        want = [r for r in read_rows(reference, table) if r["video_id"] != "bikes"]
        assert read_rows(tmp_path / "store", table) == want
