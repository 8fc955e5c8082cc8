"""Run a job: the store, its recipe, the passes over the videos and their commits.

The stage list is cut into passes (after each aggregate stage); an executor
(:mod:`vlprep.pipeline.executors`: Ray, or one local process) runs each pass's stages and
the driver here commits what they finish, partition by partition. Input partitions already
committed in the store are skipped, so a re-run after a crash (or a second run) only does
what is missing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass, field

from vlprep.jobs.builtin_manifests import resolve_manifest
from vlprep.jobs.config import Job, StageSpec
from vlprep.jobs.flow import split_passes
from vlprep.pipeline.aggregate import KeyedSums
from vlprep.pipeline.collector import RunCounts
from vlprep.pipeline.executors import Executor
from vlprep.pipeline.executors import executor as make_executor
from vlprep.pipeline.inputs import prepare_inputs
from vlprep.pipeline.progress import RunProgress
from vlprep.pipeline.provenance import (
    RecipeError,
    comparable,
    first_difference,
    job_recipe,
    recipe_json,
)
from vlprep.pipeline.report import BatchReport
from vlprep.schemas import TABLES
from vlprep.stages.base import WeightsOptions
from vlprep.store import INPUTS, RECIPE_FILE, RUNS, CommittedStore, Store, StoreError
from vlprep.store.committer import Committer
from vlprep.store.writer import BatchWriter

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
    passes = []
    for index, step in enumerate(split_passes(stages)):
        aggregate = step[-1] if step[-1].is_aggregate else None
        passes.append(Pass(index, [s for s in step if not s.is_aggregate], aggregate))
    return passes


def run_job(job: Job, address: str | None = None, quiet: bool = False,
            new_store: bool = False, executor: str | Executor = "ray") -> RunResult:
    """Run `job` to completion; per-video failures become `errors` rows, not exceptions.

    `new_store` deletes what the store holds first (to change the recipe of a store);
    `executor` runs the passes: ``ray`` (default) or ``local`` (one process, no Ray).
    """
    runner = executor if not isinstance(executor, str) else make_executor(executor, address)
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
            _run_video_pass(job, store, index.sizes, step, counts, runner, quiet)
        if step.aggregate:
            _run_aggregate(job, store, step.aggregate, counts, runner)
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
        if st.noted:  # e.g. a sample stage's decoder fallbacks: {video_id: what happened}
            stages[name].update(notes=st.noted, notes_by_video=dict(st.notes))
    c = result.counts
    return {"store": result.store, "videos": c.videos, "failed": c.failed,
            "partitions_written": c.partitions, "partitions_skipped": result.skipped_partitions,
            "rows": dict(c.rows), "seconds": round(result.seconds, 3),
            "videos_per_second": round(c.videos / result.seconds, 3) if result.seconds else None,
            "stages": stages,
            # the driver only commits: workers wrote every data byte, it received reports
            "driver": {"pid": os.getpid(), "node": _driver_node(),
                       "bytes_received": c.driver_bytes_received},
            "bytes_written": c.bytes_written, "writers": dict(c.writers)}


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
                    runner: Executor, quiet: bool) -> None:
    done = store.committed(step.index)
    expected = {pid: n for pid, n in enumerate(sizes) if pid not in done}
    if not expected:
        return
    writer = BatchWriter(store.uri, job.file.target_file_bytes, step.index, dict(store.metadata))
    committer = Committer(store, writer, expected, compact=runner.compact)
    failed = _failed_videos(store) if step.index else frozenset()
    blocks = runner.blocks(job, store, step.stages, sorted(expected), failed, writer)
    label = job.file.name if step.index == 0 else f"{job.file.name} pass {step.index + 1}"

    def note(commits) -> None:
        for commit in commits:
            counts.partitions += step.index == 0
            for name, n in commit.rows.items():
                counts.rows[name] += n

    with RunProgress(sum(expected.values()), quiet=quiet, label=label) as progress:
        for batch in blocks:  # reports only: the workers wrote the rows
            counts.driver_bytes_received += batch.nbytes
            for report in BatchReport.from_table(batch):
                for video in report.videos:
                    counts.note_video(video, count_video=step.index == 0)
                    progress.advance(failed=video["error"] is not None)
                if report.files:
                    counts.writers[f"{report.writer['node']} {report.writer['pid']}"] += len(
                        report.files)
                for pid, (videos, files) in sorted(report.by_partition().items()):
                    note(committer.add(pid, videos, files))
        note(committer.finish())
    counts.bytes_written += committer.bytes_committed
    if committer.incomplete:
        raise RuntimeError(f"partitions did not complete: {committer.incomplete}")
    store.clear_writes()  # what no commit lists: dead attempts' files, compacted originals


def _driver_node() -> str | None:
    try:
        import ray

        return ray.get_runtime_context().get_node_id() if ray.is_initialized() else None
    except Exception:  # noqa: BLE001 - informative only
        return None


def _failed_videos(store: Store) -> frozenset[str]:
    """Videos with a committed errors row so far: a later pass does not try them again."""
    table = CommittedStore(store).read("errors", ["video_id"], empty=TABLES["errors"])
    return frozenset(table.column("video_id").to_pylist())


def _run_aggregate(job: Job, store: Store, spec: StageSpec, counts: RunCounts,
                   runner: Executor) -> None:
    """A whole-table aggregation: the executor's partials, streamed to the driver and
    combined there by key. Driver memory is bounded by the number of distinct keys (a
    vocabulary), not by the table; a shuffle would cost more than it saves at that size."""
    unit = f"agg-{spec.name}"
    if unit in store.committed_units():
        return
    stage = spec.build()
    stage.setup()
    source = TABLES[stage.source].empty_table().select(list(stage.columns))
    files = CommittedStore(store).files(stage.source)
    # no source rows: empty totals of the partials' schema
    combiner = KeyedSums(list(stage.keys), stage.partial(source).schema)
    if files:
        for partial in runner.partials(job, store, spec, stage, files):
            combiner.add(partial)
    tables = stage.finalize(combiner.result())
    store.write_unit(unit, 0, tables, job.file.target_file_bytes)
    store.clear_writes()
    for name, table in tables.items():
        counts.rows[name] += table.num_rows
