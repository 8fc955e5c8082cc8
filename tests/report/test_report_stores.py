"""`vlprep report` on damaged, partial, smaller and remote copies of the demo store."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pyarrow.dataset as ds
import pytest
from store_surgery import (
    add_error,
    copy_store,
    first_file,
    keep_stages,
    rewrite,
    set_vectors,
    uncommit,
)
from typer.testing import CliRunner

from vlprep.cli import app


def cli(*args: str):
    return CliRunner().invoke(app, ["report", *args, "--quiet"])


def test_check_passes_on_the_clean_demo_store(demo_store: Path, tmp_path: Path) -> None:
    result = cli(str(demo_store), "--out", str(tmp_path / "r"), "--videos", "0", "--check")
    assert result.exit_code == 0, result.output
    assert "health: ok" in result.output
    assert (tmp_path / "r" / "index.html").is_file()


def test_check_names_table_and_column_of_nan_and_zero_embeddings(demo_store: Path,
                                                                  tmp_path: Path) -> None:
    store = copy_store(demo_store, tmp_path / "store")

    def nan_and_zero(x: np.ndarray) -> None:
        x[0, 3] = np.nan
        x[1] = 0.0

    rewrite(first_file(store, "clip_frames"), lambda t: set_vectors(t, "embedding", nan_and_zero))
    rewrite(first_file(store, "s3d"), lambda t: set_vectors(
        t, "features", lambda x: x.__setitem__((2, 0), np.inf)))
    result = cli(str(store), "--out", str(tmp_path / "r"), "--videos", "0", "--check")
    assert result.exit_code == 1, result.output
    assert "clip_frames.embedding: 1 of 32 vectors are NaN" in result.output
    assert "clip_frames.embedding: 1 of 32 vectors are all-zero" in result.output
    assert "s3d.features: 1 of 24 vectors are Inf" in result.output
    without = cli(str(store), "--out", str(tmp_path / "r"), "--videos", "0")
    assert without.exit_code == 0 and "health: FAILED" in without.output  # reported, exit 0
    assert "health check FAILED" in (tmp_path / "r" / "index.html").read_text()


def test_check_fails_on_a_table_with_too_few_rows(demo_store: Path, tmp_path: Path) -> None:
    store = copy_store(demo_store, tmp_path / "store")
    rewrite(first_file(store, "regions"), lambda t: t.slice(0, t.num_rows - 5))
    result = cli(str(store), "--out", str(tmp_path / "r"), "--videos", "0", "--check")
    assert result.exit_code == 1
    assert "regions: 43 rows, but the 4 videos that passed stage detect need at least 48" \
        in result.output


def test_failed_videos_get_cards_and_errors_by_reason(demo_store: Path, tmp_path: Path) -> None:
    from vlprep.report import build_report

    store = copy_store(demo_store, tmp_path / "store")
    add_error(store, "bikes", "s3d", "injected: the S3D worker gave up")
    report = build_report(str(store), tmp_path / "r", videos=0)
    assert [c.video_id for c in report.cards] == ["bikes"]  # no sampled ones, every failed one
    assert report.cards[0].errors[0]["error"] == "injected: the S3D worker gave up"
    reason = report.summary.errors[0]
    assert (reason.stage, reason.count, reason.examples[0][0]) == ("s3d", 1, "bikes")
    s3d = next(f for f in report.summary.flow if f.name == "s3d")
    assert (s3d.entered, s3d.ok, s3d.failed) == (4, 3, 1)
    prompter = next(f for f in report.summary.flow if f.name == "prompter")
    assert prompter.entered == 3  # the second pass skips the failed video
    html = report.index.read_text()
    assert "class='card failed'" in html and "injected: the S3D worker gave up" in html


def test_a_partial_store_reports_what_it_has(demo_store: Path, tmp_path: Path) -> None:
    from vlprep.report import build_report

    store = copy_store(demo_store, tmp_path / "store")
    uncommit(store, 1)
    report = build_report(str(store), tmp_path / "r", videos=3)
    inputs = ds.dataset(str(store / "_inputs"), format="parquet").to_table()
    first = sorted(v for v, p in zip(inputs.column("video_id").to_pylist(),
                                     inputs.column("partition").to_pylist(), strict=True)
                   if p == 0)
    assert sorted(c.video_id for c in report.cards) == first
    assert report.summary.videos_done == 2 and report.summary.partitions_done == 1
    assert report.failures == []
    assert report.health.rows["clip_frames"] == 16
    assert "partial store" in report.index.read_text()


def test_a_store_with_some_tables(demo_store: Path, tmp_path: Path) -> None:
    from vlprep.report import build_report

    store = copy_store(demo_store, tmp_path / "store")
    keep_stages(store, {"probe", "texts", "sample", "clip"})
    report = build_report(str(store), tmp_path / "r", videos=1)
    assert set(report.summary.tables) == {"videos", "texts", "clip_frames"}
    assert report.failures == []
    kinds = {s.kind for s in report.cards[0].sections}
    assert kinds == {"clip"}
    assert report.health.duplicates is not None and report.health.entities == []


def test_a_store_on_s3(demo_store: Path, tmp_path: Path, monkeypatch) -> None:
    boto3 = pytest.importorskip("boto3")
    moto_server = pytest.importorskip("moto.server")
    from vlprep.report import build_report

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        for key, value in dict(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
                               AWS_DEFAULT_REGION="us-east-1", AWS_EC2_METADATA_DISABLED="true",
                               AWS_ENDPOINT_URL=f"http://{host}:{port}").items():
            monkeypatch.setenv(key, value)
        client = boto3.client("s3", endpoint_url=f"http://{host}:{port}")
        client.create_bucket(Bucket="reports")
        for path in sorted(demo_store.rglob("*")):
            if path.is_file() and "_tmp" not in path.parts:
                client.put_object(Bucket="reports", Key=f"demo/{path.relative_to(demo_store)}",
                                  Body=path.read_bytes())
        report = build_report("s3://reports/demo", tmp_path / "r", videos=1, seed=3)
    finally:
        server.stop()
    assert report.failures == []
    assert report.summary.tables["clip_frames"]["rows"] == 32
    assert len(report.cards) == 1 and report.cards[0].sections[0].pictures
    from vlprep.report.cards import pick_videos
    from vlprep.report.health import build_health
    from vlprep.report.source import ReportSource

    local = ReportSource(str(demo_store))
    assert [v for v, _, _ in pick_videos(local, {}, 1, 3)] == [report.cards[0].video_id]
    assert report.health.columns[0].counts.tolist() == \
        build_health(local).columns[0].counts.tolist()
