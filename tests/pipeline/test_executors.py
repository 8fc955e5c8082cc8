"""The local executor (one process, no Ray) writes what the Ray executor writes."""

from __future__ import annotations

import sys

import pytest
from e2e_helpers import read_rows, run_cli
from test_passes import Hits, Picky, WordCount, _caption_job, _spec
from test_passes import ray_local as ray_local  # noqa: F401 - the fixture

from vlprep.errors import JobError
from vlprep.pipeline.executors import LocalExecutor, executor
from vlprep.pipeline.runner import run_job
from vlprep.stages.texts import TextsStage

CAPTIONS = {"v0": "a red ball", "v1": "a cube", "v2": "red red", "v3": "ball", "v4": "red"}


def _job(tmp_path):
    store = str(tmp_path / "store")
    return _caption_job(tmp_path, CAPTIONS, [
        _spec(TextsStage, "texts", store), _spec(Picky, "picky", store),
        _spec(WordCount, "wc", store, batch_size=1), _spec(Hits, "hits", store)])


def test_local_executor_runs_every_pass_without_ray(tmp_path):
    result = run_job(_job(tmp_path), quiet=True, executor="local")
    assert result.counts.videos == 5 and result.counts.failed == 1
    store = tmp_path / "store"
    assert {r["video_id"]: r["hits"] for r in read_rows(store, "hits")} == {
        "v0": 3, "v2": 2, "v3": 1, "v4": 1}  # v1 failed in the first pass: no second try
    assert [r["stage"] for r in read_rows(store, "errors")] == ["picky"]
    if "ray" in sys.modules:
        assert not sys.modules["ray"].is_initialized()
    again = run_job(_job(tmp_path), quiet=True, executor="local")  # all committed
    assert again.counts.videos == 0 and not again.counts.rows


def test_local_and_ray_executors_write_the_same_rows(tmp_path, ray_local):  # noqa: F811
    (tmp_path / "local").mkdir()
    (tmp_path / "ray").mkdir()
    run_job(_job(tmp_path / "local"), quiet=True, executor="local")
    run_job(_job(tmp_path / "ray"), quiet=True, executor="ray")
    for table in ("texts", "errors", "words", "hits"):
        assert read_rows(tmp_path / "local" / "store", table) == \
            read_rows(tmp_path / "ray" / "store", table), table


def test_local_executor_sets_each_stage_up_once(tmp_path):
    job = _job(tmp_path)
    local = LocalExecutor()
    run_job(job, quiet=True, executor=local)
    assert set(local.setup_seconds) == {"texts", "picky", "hits"}


def test_unknown_executor_is_a_job_error():
    with pytest.raises(JobError, match="unknown executor 'spark'"):
        executor("spark")
    with pytest.raises(JobError, match="ray executor only"):
        executor("local", address="auto")



class _Plan:
    """Stands in for a Ray Dataset: records what each map_batches asked for."""

    def __init__(self):
        self.calls: list[dict] = []

    def map_batches(self, fn, **kwargs):
        self.calls.append(kwargs)
        return self


def test_ray_plan_asks_for_a_stages_custom_resources(tmp_path):
    from vlprep.pipeline.executors import _add_stage

    store = str(tmp_path / "store")
    plan = _Plan()
    _add_stage(plan, _spec(TextsStage, "texts", store, num_cpus=0.5,
                           resources={"gpu_node": 1.0}), partition_size=8)
    _add_stage(plan, _spec(Picky, "picky", store), partition_size=8)
    pinned, plain = plan.calls
    assert pinned["resources"] == {"gpu_node": 1.0} and pinned["num_cpus"] == 0.5
    assert "resources" not in plain

@pytest.mark.slow
def test_demo_job_local_and_ray_give_identical_stores(tmp_path, demo_store):
    """The acceptance check: the built-in demo job, row sets per table, both executors."""
    store = tmp_path / "local"
    result = run_cli("run", "demo", "--quiet", "--executor", "local", "--set",
                     f"store={store}", timeout=1800)
    assert result.returncode == 0, result.stderr[-3000:]
    tables = sorted(p.name for p in demo_store.iterdir() if not p.name.startswith("_"))
    assert tables == sorted(p.name for p in store.iterdir() if not p.name.startswith("_"))
    assert {"regions", "trajectories", "s3d", "soft_labels"} <= set(tables)
    for table in tables:  # bit for bit, every table: detector floats included
        local, ray = _keyed(store, table), _keyed(demo_store, table)
        assert local.keys() == ray.keys(), table
        assert read_rows(store, table) == read_rows(demo_store, table), table


def _keyed(store, table: str) -> dict:
    """Rows by their key columns (the non-float ones: ids, ranks, indices, names)."""
    rows = read_rows(store, table)
    keys = [k for k, v in rows[0].items() if isinstance(v, (str, int))] if rows else []
    return {tuple(r[k] for k in keys): r for r in rows}
