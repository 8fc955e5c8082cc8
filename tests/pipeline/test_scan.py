"""`vlprep scan` sorts every row into a status, and its filtered manifest runs cleanly."""

from __future__ import annotations

import json
import os
import shutil

import pyarrow.parquet as pq
from e2e_helpers import read_rows, run_cli, write_job
from media import sample_videos, write_audio_only


def _mixed_manifest(tmp_path):
    clips = sample_videos()
    big = clips["bigbuckbunny"]
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(big.read_bytes()[: os.path.getsize(big) // 3])
    shutil.copy(clips["bikes"], tmp_path / "bikes.mp4")
    rows = [
        {"video_id": "good1", "path": str(clips["carphone_pristine"]), "caption": "a man"},
        {"video_id": "good2", "path": str(clips["carphone_distorted"]), "caption": "a man"},
        {"video_id": "missing", "path": str(tmp_path / "nowhere.mp4")},
        {"video_id": "truncated", "path": str(truncated)},
        {"video_id": "audio", "path": str(write_audio_only(tmp_path / "audio.m4a"))},
        {"video_id": "huge", "path": str(big)},
        {"video_id": "good1", "path": str(tmp_path / "bikes.mp4")},
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path, os.path.getsize(big)


def test_scan_classifies_each_row_and_filtered_manifest_runs(tmp_path):
    manifest, big_size = _mixed_manifest(tmp_path)
    cap = max(os.path.getsize(p) for k, p in sample_videos().items() if k.startswith("car"))
    assert cap < big_size
    result = run_cli("scan", str(manifest), "--out", str(tmp_path / "scan"),
                     "--max-file-bytes", str(cap), "--workers", "2")
    assert result.returncode == 0, result.stderr
    report = {(r["video_id"], r["path"]): r
              for r in pq.read_table(tmp_path / "scan" / "scan.parquet").to_pylist()}
    status = {vid: r["status"] for (vid, path), r in report.items()
              if not path.endswith("bikes.mp4")}
    assert status == {"good1": "ok", "good2": "ok", "missing": "missing",
                      "truncated": "unreadable", "audio": "no_video_stream",
                      "huge": "over_caps"}
    dup = report[("good1", str(tmp_path / "bikes.mp4"))]
    assert dup["status"] == "duplicate"
    assert "ok 2" in result.stdout and "duplicate 1" in result.stdout
    ok = pq.read_table(tmp_path / "scan" / "manifest.ok.parquet")
    assert ok.column("video_id").to_pylist() == ["good1", "good2"]

    job = write_job(tmp_path / "job.yaml", tmp_path / "scan" / "manifest.ok.parquet",
                    tmp_path / "store", num_frames=2)
    run = run_cli("run", str(job), "--quiet")
    assert run.returncode == 0, run.stderr
    assert not (tmp_path / "store" / "errors").exists()
    assert len(read_rows(tmp_path / "store", "videos")) == 2
