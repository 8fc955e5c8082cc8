"""`vlprep plan` estimates what a run then writes."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
from e2e_helpers import run_cli, write_job
from media import sample_videos


def test_plan_estimates_bytes_within_30_percent(tmp_path):
    rows = [{"video_id": k, "path": str(v), "caption": f"a clip called {k}"}
            for k, v in sorted(sample_videos().items())]
    manifest = tmp_path / "m.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    job = write_job(tmp_path / "job.yaml", manifest, tmp_path / "store", partition_size=2)
    planned = run_cli("plan", str(job), "--json", "--sample", "2")
    assert planned.returncode == 0, planned.stderr
    estimate = json.loads(planned.stdout)
    assert estimate["videos"] == 4 and estimate["sampled"] == 2
    assert {s["name"] for s in estimate["stages"]} == {"probe", "texts", "sample", "clip"}
    assert estimate["seconds"] > 0 and estimate["free_bytes"] > 0
    run = run_cli("run", str(job), "--quiet")
    assert run.returncode == 0, run.stderr
    for table in estimate["tables"]:
        files = list((tmp_path / "store" / table["name"]).glob("*.parquet"))
        written = sum(f.stat().st_size for f in files)
        rows_written = sum(pq.read_metadata(f).num_rows for f in files)
        assert rows_written == table["rows"], table["name"]
        assert abs(table["bytes"] - written) <= 0.3 * written, (table, written)
