"""Run a job: its stage list becomes one streaming Ray Data plan writing the store.

Stateless stages run as Ray tasks, stages with a model as actor pools, each with the
resources it declares. Input partitions already committed in the store are skipped, so a
re-run after a crash (or a second run) only does what is missing.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

from vlprep.jobs.builtin_manifests import resolve_manifest
from vlprep.jobs.config import Job, StageSpec
from vlprep.pipeline import adapters
from vlprep.pipeline.collector import PartitionCollector, RunCounts
from vlprep.pipeline.inputs import INPUT_SCHEMA, input_path, prepare_inputs
from vlprep.pipeline.progress import RunProgress
from vlprep.pipeline.store import INPUTS, Store, StoreError

log = logging.getLogger("vlprep")


@dataclass
class RunResult:
    store: str
    total_videos: int
    skipped_partitions: int
    counts: RunCounts
    seconds: float


def run_job(job: Job, address: str | None = None, quiet: bool = False) -> RunResult:
    """Run `job` to completion; per-video failures become `errors` rows, not exceptions."""
    started = time.monotonic()
    store = Store(job.store)
    try:
        store.fs.create_dir(store.root)
        store.recover()
    except OSError as e:
        raise StoreError(f"store {job.store}: cannot be written ({e})") from None
    try:
        manifest = resolve_manifest(job.manifest)
        index = prepare_inputs(store, manifest, job.file.partition_size)
    except Exception:
        if store.fs.get_file_info(store.path(INPUTS, "_index.json")).type.name != "File":
            store.fs.delete_dir_contents(store.path(INPUTS), missing_dir_ok=True)
        raise
    done = store.committed()
    expected = {pid: n for pid, n in enumerate(index.sizes) if pid not in done}
    collector = PartitionCollector(store, expected, job.file.target_file_bytes)
    for spec in job.stages:
        if spec.options.__dict__.get("init") == "random":
            log.warning("stage %s uses RANDOM weights (init: random): features are not "
                        "meaningful; point `checkpoint` at real weights for real runs", spec.name)
    if expected:
        _execute(job, store, collector, address, quiet, total=index.total, already=len(done))
        if collector.incomplete:
            raise RuntimeError(f"partitions did not complete: {collector.incomplete}")
    return RunResult(job.store, index.total, len(done), collector.counts,
                     time.monotonic() - started)


def _execute(job: Job, store: Store, collector: PartitionCollector, address: str | None,
             quiet: bool, total: int, already: int) -> None:
    import ray

    _init_ray(job, address)
    ds = ray.data.read_parquet([input_path(store, pid) for pid in sorted(collector.expected)],
                               filesystem=store.fs, schema=INPUT_SCHEMA)
    ds = ds.map_batches(adapters.manifest_to_state, batch_format="pyarrow", batch_size=64)
    for spec in job.stages:
        ds = _add_stage(ds, spec)
    ds = ds.map_batches(adapters.finish_state, batch_format="pyarrow", batch_size=None)
    todo = sum(collector.expected.values())
    with RunProgress(todo, quiet=quiet, label=job.file.name) as progress:
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for record in adapters.to_records(batch):
                collector.add(record)
                progress.advance(failed=bool(record.get("_error")))


def _add_stage(ds, spec: StageSpec):
    import ray

    res = spec.resources
    common = dict(batch_format="pyarrow", batch_size=res.batch_size, num_cpus=res.num_cpus,
                  num_gpus=res.num_gpus or None, zero_copy_batch=False)
    if spec.cls.stateful:
        return ds.map_batches(adapters.StageActor, fn_constructor_args=(spec,),
                              compute=ray.data.ActorPoolStrategy(size=res.concurrency), **common)
    return ds.map_batches(adapters.run_stage_task, fn_kwargs={"spec": spec},
                          compute=ray.data.TaskPoolStrategy(size=res.concurrency), **common)


def _init_ray(job: Job, address: str | None) -> None:
    import ray

    address = address or job.file.ray.address
    if ray.is_initialized():
        return
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    kwargs: dict = dict(include_dashboard=False, logging_level=logging.WARNING,
                        log_to_driver=True, ignore_reinit_error=True)
    if address:
        ray.init(address=address, **kwargs)
    else:
        ray.init(address="local", num_cpus=job.file.ray.num_cpus,
                 object_store_memory=job.file.ray.object_store_memory, **kwargs)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    ctx.execution_options.preserve_order = False
