"""Run a job: its stage list becomes streaming Ray Data plans writing the store.

Stateless stages run as Ray tasks, stages with a model as actor pools, each with the
resources it declares. Input partitions already committed in the store are skipped, so a
re-run after a crash (or a second run) only does what is missing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

from vlprep.jobs.builtin_manifests import resolve_manifest
from vlprep.jobs.config import Job, StageSpec
from vlprep.jobs.flow import keys_to_drop
from vlprep.pipeline import adapters
from vlprep.pipeline.aggregate import KeyedSums
from vlprep.pipeline.collector import PartitionCollector, RunCounts
from vlprep.pipeline.inputs import prepare_inputs
from vlprep.pipeline.progress import RunProgress
from vlprep.pipeline.provenance import (
    RECIPE_FILE,
    RecipeError,
    comparable,
    first_difference,
    job_recipe,
    recipe_json,
)
from vlprep.pipeline.store import INPUTS, Store, StoreError
from vlprep.schemas import TABLES
from vlprep.stages.base import WeightsOptions
from vlprep.stages.record import new_error

RUNS = "_runs"  # one summary JSON per run

AGGREGATE_IN_DRIVER_BYTES = 256 * 2**20  # smaller source tables are aggregated in the driver
log = logging.getLogger("vlprep")


@dataclass
class RunResult:
    store: str
    total_videos: int
    skipped_partitions: int  # partitions of the first pass committed before this run
    counts: RunCounts  # what this run did (videos of the first pass; rows of all passes)
    seconds: float


@dataclass
class Pass:
    """Per-video stages run in one streaming plan, then optionally a corpus-wide aggregate.

    A job's stage list is cut after each aggregate stage: stages after it need its output,
    so they run in a further pass over the videos.
    """

    index: int
    stages: list[StageSpec] = field(default_factory=list)
    aggregate: StageSpec | None = None


def plan_passes(stages: list[StageSpec]) -> list[Pass]:
    passes = [Pass(0)]
    for spec in stages:
        if spec.is_aggregate:
            passes[-1].aggregate = spec
            passes.append(Pass(len(passes)))
        else:
            passes[-1].stages.append(spec)
    return [p for p in passes if p.stages or p.aggregate]


def run_job(job: Job, address: str | None = None, quiet: bool = False,
            new_store: bool = False) -> RunResult:
    """Run `job` to completion; per-video failures become `errors` rows, not exceptions.

    `new_store` deletes what the store holds first (to change the recipe of a store).
    """
    started = time.monotonic()
    recipe = job_recipe(job)  # checks checkpoints' sha256 before any work
    store = Store(job.store)
    try:
        if new_store and store.exists():
            store.fs.delete_dir_contents(store.root)
        store.fs.create_dir(store.root)
        store.recover()
        _check_recipe(store, recipe)
    except OSError as e:
        raise StoreError(f"store {job.store}: cannot be written ({e})") from None
    store.metadata = {"vlprep.recipe": recipe_json(recipe)}
    try:
        manifest = resolve_manifest(job.manifest)
        index = prepare_inputs(store, manifest, job.file.partition_size)
    except Exception:
        if store.fs.get_file_info(store.path(INPUTS, "_index.json")).type.name != "File":
            store.fs.delete_dir_contents(store.path(INPUTS), missing_dir_ok=True)
        raise
    for spec in job.stages:
        if isinstance(spec.options, WeightsOptions) and spec.options.init == "random":
            log.warning("stage %s uses RANDOM weights (init: random): features are not "
                        "meaningful; point `checkpoint` at real weights for real runs", spec.name)
    skipped = len(store.committed(0))
    counts = RunCounts()
    for step in plan_passes(job.stages):
        if step.stages:
            _run_video_pass(job, store, index.sizes, step, counts, address, quiet)
        if step.aggregate:
            _run_aggregate(job, store, step.aggregate, counts, address)
    result = RunResult(job.store, index.total, skipped, counts, time.monotonic() - started)
    if counts.videos or counts.rows:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        store.write_atomic(store.path(RUNS, f"run-{stamp}.json"),
                           json.dumps(run_summary(result), indent=1).encode())
    return result


def run_summary(result: RunResult) -> dict:
    """Per stage: videos in, ok, errors by reason, worker seconds and videos per second."""
    stages = {}
    for name, st in result.counts.stages.items():
        errors = sum(st.errors.values())
        stages[name] = {
            "in": st.videos, "ok": st.videos - errors, "errors": errors,
            "errors_by_reason": dict(st.errors.most_common()),
            "worker_seconds": round(st.seconds, 3),
            "videos_per_worker_second": round(st.videos / st.seconds, 3) if st.seconds else None,
        }
    c = result.counts
    return {"store": result.store, "videos": c.videos, "failed": c.failed,
            "partitions_written": c.partitions, "partitions_skipped": result.skipped_partitions,
            "rows": dict(c.rows), "seconds": round(result.seconds, 3),
            "videos_per_second": round(c.videos / result.seconds, 3) if result.seconds else None,
            "stages": stages}


def _check_recipe(store: Store, recipe: dict) -> None:
    """Refuse to append to a store made with another recipe; record it on first use."""
    path = store.path(RECIPE_FILE)
    if store.fs.get_file_info(path).type.name == "File":
        old = json.loads(store.read_bytes(path))
        diff = first_difference(comparable(old), comparable(recipe))
        if diff:
            raise RecipeError(f"store {store.uri} was made with another recipe ({diff}); "
                              "write to a new store, or pass --new-store to replace it")
        return
    store.write_atomic(path, json.dumps(recipe, indent=1, sort_keys=True).encode())


def _run_video_pass(job: Job, store: Store, sizes: list[int], step: Pass, counts: RunCounts,
                    address: str | None, quiet: bool) -> None:
    done = store.committed(step.index)
    expected = {pid: n for pid, n in enumerate(sizes) if pid not in done}
    if not expected:
        return
    import ray

    _init_ray(job, address)
    collector = PartitionCollector(store, expected, job.file.target_file_bytes, step.index,
                                   counts=counts)
    # One block per input partition: blocks are what flows between stages, so several let
    # every stage work at once. (Ray's Parquet reader merges small files into one block, and
    # one block would go through the stages in turn.)
    failed = _failed_videos(store) if step.index else frozenset()
    pids = sorted(expected)
    ds = ray.data.from_items([{"partition": pid} for pid in pids], override_num_blocks=len(pids))
    ds = ds.map_batches(adapters.partitions_to_state,
                        fn_kwargs={"store_uri": store.uri, "failed": failed},
                        batch_format="pyarrow", batch_size=None)
    drops = keys_to_drop(step.stages)
    for i, spec in enumerate(step.stages):
        ds = _add_stage(ds, spec, job.file.partition_size, drops.get(spec.name, ()),
                        last=i == len(step.stages) - 1)
    label = job.file.name if step.index == 0 else f"{job.file.name} pass {step.index + 1}"
    with RunProgress(sum(expected.values()), quiet=quiet, label=label) as progress:
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            for record in adapters.to_records(batch):
                collector.add(record, count_video=step.index == 0)
                progress.advance(failed=new_error(record) is not None)
    if collector.incomplete:
        raise RuntimeError(f"partitions did not complete: {collector.incomplete}")


def _failed_videos(store: Store) -> frozenset[str]:
    """Videos with an errors row so far: a later pass does not try them again."""
    import pyarrow.dataset as pads

    files = store.table_files("errors")
    if not files:
        return frozenset()
    table = pads.dataset(files, filesystem=store.fs, format="parquet").to_table(
        columns=["video_id"])
    return frozenset(table.column("video_id").to_pylist())


def _run_aggregate(job: Job, store: Store, spec: StageSpec, counts: RunCounts,
                   address: str | None) -> None:
    """A whole-table aggregation: partials in parallel Ray tasks, streamed to the driver and
    combined there by key. Driver memory is bounded by the number of distinct keys (a
    vocabulary), not by the table; a shuffle would cost more than it saves at that size."""
    unit = f"agg-{spec.name}"
    if unit in store.committed_units():
        return
    import pyarrow as pa
    import pyarrow.dataset as pads
    import ray

    stage = spec.build()
    stage.setup()
    source = TABLES[stage.source].empty_table().select(list(stage.columns))
    files = store.table_files(stage.source)
    # no source rows: empty totals of the partials' schema
    combiner = KeyedSums(list(stage.keys), stage.partial(source).schema)
    if files and _bytes_of(store, files) <= AGGREGATE_IN_DRIVER_BYTES:
        # a small table: Ray's task start-up would cost more than the work itself
        source_ds = pads.dataset(files, filesystem=store.fs, format="parquet")
        for batch in source_ds.to_batches(columns=list(stage.columns),
                                          batch_size=spec.resources.batch_size or 4096):
            combiner.add(stage.partial(pa.Table.from_batches([batch])))
    elif files:
        _init_ray(job, address)
        res = spec.resources
        ds = ray.data.read_parquet(files, filesystem=store.fs).select_columns(
            list(stage.columns))
        ds = ds.map_batches(adapters.run_partial, fn_kwargs={"spec": spec},
                            batch_format="pyarrow", batch_size=res.batch_size,
                            num_cpus=res.num_cpus,
                            compute=ray.data.TaskPoolStrategy(size=res.concurrency))
        for batch in ds.iter_batches(batch_format="pyarrow", batch_size=None):
            combiner.add(batch)
    tables = stage.finalize(combiner.result())
    store.write_unit(unit, 0, tables, job.file.target_file_bytes)
    for name, table in tables.items():
        counts.rows[name] += table.num_rows


def _bytes_of(store: Store, files: list[str]) -> int:
    return sum(info.size or 0 for info in store.fs.get_file_info(files))


def _add_stage(ds, spec: StageSpec, partition_size: int, drop: tuple[str, ...] = (),
               last: bool = False):
    import ray

    res = spec.resources
    # a batch larger than a partition's block would make Ray Data wait for further blocks,
    # and the stages would then take the whole run in turn instead of side by side
    batch_size = min(res.batch_size, partition_size)
    common = dict(batch_format="pyarrow", batch_size=batch_size, num_cpus=res.num_cpus,
                  num_gpus=res.num_gpus or None, zero_copy_batch=False)
    if spec.cls.stateful:
        return ds.map_batches(adapters.StageActor, fn_constructor_args=(spec, drop, last),
                              compute=ray.data.ActorPoolStrategy(
                                  size=res.concurrency,
                                  # a batch goes to an idle actor rather than queueing behind
                                  # a busy one while the pool's other actors still start up
                                  max_tasks_in_flight_per_actor=1 if res.concurrency > 1 else 2),
                              **common)
    return ds.map_batches(adapters.run_stage_task,
                          fn_kwargs={"spec": spec, "drop": drop, "last": last},
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
