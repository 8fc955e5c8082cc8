"""Manifest, videos and store on s3://, against a real S3 API server (moto) on loopback.

The server runs in this test process on a free port; the CLI subprocesses (driver and
local Ray workers) reach it through the standard AWS variables, or through the URI query.
"""

from __future__ import annotations

import json
import logging
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.fs as pafs
import pytest
from e2e_helpers import run_cli, write_job
from media import sample_videos

from vlprep.failpoints import ENV as FAILPOINT_ENV

boto3 = pytest.importorskip("boto3")
moto_server = pytest.importorskip("moto.server")

BUCKET = "vlprep-test"
KEY, SECRET, REGION = "testing", "testing", "us-east-1"
TABLES = ("videos", "clip_frames", "texts", "errors")
RUN_TIMEOUT = 600  # seconds per CLI run: generous, the machine is small and shared


@dataclass
class S3:
    host: str
    port: int
    client: object  # boto3 S3 client

    @property
    def endpoint(self) -> str:
        return f"http://{self.host}:{self.port}"

    def env(self, endpoint_in_env: bool = True) -> dict[str, str]:
        """The CLI's environment: credentials, and the endpoint unless a URI query gives it."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
        env.update(AWS_ACCESS_KEY_ID=KEY, AWS_SECRET_ACCESS_KEY=SECRET,
                   AWS_DEFAULT_REGION=REGION, AWS_EC2_METADATA_DISABLED="true",
                   AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        if endpoint_in_env:
            env["AWS_ENDPOINT_URL"] = self.endpoint
        return env

    def fs(self) -> pafs.S3FileSystem:
        return pafs.S3FileSystem(access_key=KEY, secret_key=SECRET, region=REGION,
                                 endpoint_override=f"{self.host}:{self.port}", scheme="http")

    def keys(self, prefix: str) -> dict[str, tuple[str, str]]:
        """key -> (ETag, LastModified) of every object under a prefix."""
        out = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=BUCKET, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = (obj["ETag"], str(obj["LastModified"]))
        return out

    def rows(self, prefix: str, table: str) -> list[dict]:
        data = pads.dataset(f"{BUCKET}/{prefix}/{table}", filesystem=self.fs(),
                            format="parquet").to_table()
        rows = data.to_pylist()
        return sorted(rows, key=lambda r: tuple(str(v) for v in r.values()))


@pytest.fixture(scope="module")
def s3() -> Iterator[S3]:
    """A moto S3 server on 127.0.0.1 (free port) holding the real clips and a manifest.

    The manifest's paths are relative (`videos/<name>.mp4`), plus a text file named .mp4
    and an object that does not exist, which must become `errors` rows.
    """
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one log line per request
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        client = boto3.client("s3", endpoint_url=f"http://{host}:{port}",
                              aws_access_key_id=KEY, aws_secret_access_key=SECRET,
                              region_name=REGION)
        client.create_bucket(Bucket=BUCKET)
        rows = []
        for stem, path in sorted(sample_videos().items()):
            client.put_object(Bucket=BUCKET, Key=f"data/videos/{stem}.mp4",
                              Body=path.read_bytes())
            rows.append({"video_id": stem, "path": f"videos/{stem}.mp4",
                         "caption": f"a clip called {stem}"})
        client.put_object(Bucket=BUCKET, Key="data/videos/notes.mp4",
                          Body=b"this is not a video\n" * 20)
        rows += [{"video_id": "notes", "path": "videos/notes.mp4"},
                 {"video_id": "missing", "path": "videos/missing.mp4", "caption": "gone"}]
        client.put_object(Bucket=BUCKET, Key="data/manifest.jsonl",
                          Body="".join(json.dumps(r) + "\n" for r in rows).encode())
        yield S3(host, port, client)
    finally:
        server.stop()


def _job(path: Path, store: str, partition_size: int = 2) -> Path:
    return write_job(path, f"s3://{BUCKET}/data/manifest.jsonl", store,  # type: ignore[arg-type]
                     partition_size=partition_size)


@pytest.fixture(scope="module")
def finished(tmp_path_factory, s3) -> tuple[str, Path]:
    """An uninterrupted run, all on S3 (endpoint from AWS_ENDPOINT_URL)."""
    job = _job(tmp_path_factory.mktemp("s3-run") / "job.yaml", f"s3://{BUCKET}/full")
    result = run_cli("run", str(job), "--quiet", env=s3.env(), timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    return "full", job


def _committed_files(s3: S3, prefix: str) -> set[str]:
    files = set()
    for key in _commit_records(s3, prefix):
        body = s3.client.get_object(Bucket=BUCKET, Key=key)["Body"].read()
        for table, names in json.loads(body)["files"].items():
            files.update(f"{prefix}/{table}/{name}" for name in names)
    return files


def _files(s3: S3, prefix: str) -> list[str]:
    """Objects under a prefix, less the empty `dir/` markers pyarrow keeps for folders."""
    return sorted(k for k in s3.keys(prefix) if not k.endswith("/"))


def _commit_records(s3: S3, prefix: str) -> list[str]:
    return [k for k in s3.keys(f"{prefix}/_commits/") if k.endswith(".json")]  # not dir markers


def _data_files(s3: S3, prefix: str) -> set[str]:
    return {k for k in s3.keys(f"{prefix}/") if k.endswith(".parquet")
            and not k.startswith((f"{prefix}/_inputs/", f"{prefix}/_tmp/"))}


def test_run_reads_and_writes_s3(s3, finished):
    prefix, _ = finished
    stems = sorted(sample_videos())
    videos = s3.rows(prefix, "videos")
    assert [r["video_id"] for r in videos] == stems
    assert [r["path"] for r in videos] == [f"s3://{BUCKET}/data/videos/{s}.mp4" for s in stems]
    sizes = {s: p.stat().st_size for s, p in sample_videos().items()}
    assert {r["video_id"]: r["file_size"] for r in videos} == sizes
    frames = s3.rows(prefix, "clip_frames")
    assert {s: sum(r["video_id"] == s for r in frames) for s in stems} == {s: 8 for s in stems}
    errors = {r["video_id"]: r for r in s3.rows(prefix, "errors")}
    assert set(errors) == {"notes", "missing"}
    assert errors["missing"]["stage"] == "probe" and "no such object" in errors["missing"]["error"]
    assert {r["video_id"] for r in s3.rows(prefix, "texts")} == set(stems)
    # Exactly once on S3: every data object is named by a commit record, nothing left aside.
    assert _data_files(s3, prefix) == _committed_files(s3, prefix)
    assert _files(s3, f"{prefix}/_tmp/") == []


def test_inspect_reads_an_s3_store(s3, finished):
    prefix, _ = finished
    result = run_cli("inspect", f"s3://{BUCKET}/{prefix}", "--json", env=s3.env())
    assert result.returncode == 0, result.stderr
    tables = json.loads(result.stdout)["tables"]
    assert tables["clip_frames"]["rows"] == 32 and tables["videos"]["rows"] == 4


def test_rerun_on_s3_adds_nothing(s3, finished):
    prefix, job = finished
    def stored() -> dict[str, tuple[str, str]]:  # all but folder markers and run summaries
        keys = s3.keys(f"{prefix}/")
        return {k: keys[k] for k in _files(s3, f"{prefix}/") if "/_runs/" not in k}

    before = stored()
    result = run_cli("run", str(job), "--quiet", env=s3.env(), timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    assert stored() == before  # not one object written, rewritten or removed


def test_resume_on_s3_after_kill_between_copy_and_commit(tmp_path, s3, finished):
    """SIGKILL after a partition's objects are copied into place but before its commit."""
    reference, _ = finished
    job = _job(tmp_path / "job.yaml", f"s3://{BUCKET}/resumed", partition_size=1)
    killed = run_cli("run", str(job), "--quiet", timeout=RUN_TIMEOUT,
                     env={**s3.env(), FAILPOINT_ENV: "store.files_moved:3:kill"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    committed = _committed_files(s3, "resumed")
    orphans = _data_files(s3, "resumed") - committed
    assert len(_commit_records(s3, "resumed")) == 2 and orphans  # partition 3 is in place
    result = run_cli("run", str(job), "--quiet", env=s3.env(), timeout=RUN_TIMEOUT)
    assert result.returncode == 0, result.stderr
    for table in TABLES:
        assert s3.rows("resumed", table) == s3.rows(reference, table), table
    assert len(_commit_records(s3, "resumed")) == 6
    assert _data_files(s3, "resumed") == _committed_files(s3, "resumed")  # orphans redone
    assert _files(s3, "resumed/_tmp/") == []


def test_uri_query_configures_the_endpoint_without_leaking_secrets(s3, monkeypatch):
    """`?endpoint_override=...&scheme=http` on the manifest reaches its relative videos;
    credentials in the URI (`s3://KEY:SECRET@bucket`) do not reach the rows."""
    from vlprep.jobs.manifest import read_manifest
    from vlprep.stages.media_io import local_path

    for name in [k for k in os.environ if k.startswith("AWS_")]:
        monkeypatch.delenv(name)
    query = f"endpoint_override={s3.host}:{s3.port}&scheme=http&region={REGION}"
    uri = f"s3://{KEY}:{SECRET}@{BUCKET}/data/manifest.jsonl?{query}"
    rows = pa.Table.from_batches(list(read_manifest(uri))).to_pylist()
    path = {r["video_id"]: r["path"] for r in rows}["bikes"]
    assert path == f"s3://{BUCKET}/data/videos/bikes.mp4?{query}"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEY)  # credentials: environment, not the rows
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    local = local_path(path)
    assert Path(local).read_bytes() == sample_videos()["bikes"].read_bytes()
    assert local_path(path) == local  # cached: the probe and sample stages fetch once


def test_missing_and_oversized_objects_are_video_errors(s3, monkeypatch):
    from vlprep.stages.base import VideoError
    from vlprep.stages.media_io import local_path

    for name, value in s3.env().items():
        if name.startswith("AWS_"):
            monkeypatch.setenv(name, value)
    with pytest.raises(VideoError, match="no such object"):
        local_path(f"s3://{BUCKET}/data/videos/missing.mp4")
    with pytest.raises(VideoError, match="file too large"):
        local_path(f"s3://{BUCKET}/data/videos/bikes.mp4", max_bytes=1000)
    assert local_path("/some/local.mp4") == "/some/local.mp4"
    assert local_path("file:///some/local%20file.mp4") == "/some/local file.mp4"
