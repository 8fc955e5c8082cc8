"""`vlprep plan JOB`: estimate rows, bytes and time of a run before running it.

A few videos from the manifest go through the job's stages on the local executor, in this
process (each stage with the threads its declared CPUs give it, as in a Ray worker); their
outputs are written to Parquet in memory exactly as the store writes them. Rows and bytes
per video scale to the whole manifest, and every file the run will write adds its fixed
cost (schema, footer and the recipe the store records in each file); time is the stages'
CPU work spread over the CPUs, plus set-up.
"""

from __future__ import annotations

import io
import math
import os
import shutil
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from itertools import islice
from pathlib import Path

import pyarrow as pa

from vlprep.jobs.builtin_manifests import resolve_manifest
from vlprep.jobs.config import Job, StageSpec
from vlprep.jobs.manifest import read_manifest
from vlprep.pipeline.executors import LocalExecutor
from vlprep.pipeline.provenance import job_recipe, recipe_json
from vlprep.pipeline.runner import plan_passes
from vlprep.stages.base import AggregateStage
from vlprep.stages.record import failed, new_error, timings, without_bookkeeping
from vlprep.stages.record import outputs as record_outputs
from vlprep.store import Store, open_filesystem
from vlprep.store.parquet import write_parquet

RAY_STARTUP_S = 10.0  # starting a local Ray and its first workers, measured on 2 cores


@dataclass
class StageEstimate:
    name: str
    setup_s: float
    s_per_video: float
    cpus: float
    concurrency: int
    run_s: float = 0.0  # work done once, not per video (an aggregate's finalize)


@dataclass
class TableEstimate:
    name: str
    rows: int
    bytes: int
    per_video_bytes: float


@dataclass
class Plan:
    videos: int
    sampled: int
    failed_in_sample: int
    stages: list[StageEstimate] = field(default_factory=list)
    tables: list[TableEstimate] = field(default_factory=list)
    seconds: float = 0.0
    free_bytes: int | None = None
    warnings: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


def _count_rows(manifest: str) -> int:
    return sum(batch.num_rows for batch in read_manifest(manifest))


def _parquet_bytes(table: pa.Table, target_bytes: int, metadata: dict[str, str]) -> int:
    sink = io.BytesIO()
    write_parquet(sink, table, target_bytes, metadata)
    return sink.tell()


def _table_bytes(table: pa.Table, videos: int, sampled: int, partitions: int,
                 target_bytes: int, metadata: dict[str, str]) -> tuple[int, float]:
    """Bytes the run writes for a table, and bytes per video: a fixed cost per file plus the
    sample's per-video share of the data."""
    fixed = _parquet_bytes(table.schema.empty_table(), target_bytes, metadata)
    per_video = max(0.0, _parquet_bytes(table, target_bytes, metadata) - fixed) / max(1, sampled)
    rows = table.num_rows * videos / max(1, sampled)
    data = per_video * videos
    files = max(min(partitions, math.ceil(rows)), math.ceil(table.nbytes * videos
                                                              / max(1, sampled) / target_bytes))
    return round(data + files * fixed), per_video


def _free_bytes(store: str) -> int | None:
    fs, root = open_filesystem(store)
    if fs.type_name != "local":
        return None
    path = Path(root)
    while not path.exists():
        path = path.parent
    return shutil.disk_usage(path).free


def plan_job(job: Job, sample: int = 8, cpus: int | None = None) -> Plan:
    """Estimate a run of `job` from `sample` videos of its manifest."""
    manifest = resolve_manifest(job.manifest)
    total = _count_rows(manifest)
    rows = [dict(r, partition=0) for batch in islice(read_manifest(manifest, batch_rows=sample), 1)
            for r in batch.to_pylist()][:sample]
    cpus = cpus or job.file.ray.num_cpus or os.cpu_count() or 1
    metadata = {"vlprep.recipe": recipe_json(job_recipe(job))}
    target = job.file.target_file_bytes
    partitions = math.ceil(total / job.file.partition_size)
    plan = Plan(videos=total, sampled=len(rows), failed_in_sample=0)
    outputs: dict[str, list[pa.Table]] = defaultdict(list)
    passes: list[list[StageEstimate]] = []
    # Later passes read what aggregates wrote (the prompter reads `entities`): a scratch
    # store holds those, so planning never touches the job's own store.
    with tempfile.TemporaryDirectory(prefix="vlprep-plan-") as scratch:
        local = LocalExecutor(store=scratch, journal=False, worker_threads=True)
        for step in plan_passes(job.stages):
            if step.stages:
                rows = local.run(step.stages, rows)
                passes.append([_estimate(spec, rows, local) for spec in step.stages])
                _collect(rows, outputs)
                plan.failed_in_sample += sum(new_error(r) is not None for r in rows)
                rows = [without_bookkeeping(r) for r in rows if not failed(r)]
            if step.aggregate:
                spec = step.aggregate
                started = time.perf_counter()
                stage = spec.cls(spec.options, spec.resources, spec.name, scratch)
                stage.setup()
                setup_s = time.perf_counter() - started
                started = time.perf_counter()
                _aggregate(stage, outputs, Store(scratch), target)
                passes.append([StageEstimate(spec.name, setup_s, 0.0, spec.resources.num_cpus,
                                             1, time.perf_counter() - started)])
    plan.stages = [s for stages in passes for s in stages]
    scale = total / max(1, plan.sampled)
    for name, parts in sorted(outputs.items()):
        table = pa.concat_tables(parts)
        if name.startswith("aggregate:"):
            size = _parquet_bytes(table, target, metadata)
            plan.tables.append(TableEstimate(name.split(":", 1)[1], table.num_rows, size, 0.0))
        else:
            size, per_video = _table_bytes(table, total, plan.sampled, partitions, target,
                                           metadata)
            plan.tables.append(TableEstimate(name, round(table.num_rows * scale), size,
                                             per_video))
    plan.seconds = RAY_STARTUP_S + sum(_pass_seconds(stages, total, cpus) for stages in passes)
    plan.free_bytes = _free_bytes(job.store)
    needed = sum(t.bytes for t in plan.tables)
    if plan.free_bytes is not None and plan.free_bytes < needed:
        plan.warnings.append(f"the store's filesystem has {plan.free_bytes / 2**30:.1f} GiB free, "
                             f"the run needs about {needed / 2**30:.1f} GiB")
    return plan


def _estimate(spec: StageSpec, rows: list[dict], local: LocalExecutor) -> StageEstimate:
    """A stage's set-up and seconds per video, as the local executor timed them."""
    seconds = sum(timings(r).get(spec.name, 0.0) for r in rows)
    return StageEstimate(spec.name, local.setup_seconds.get(spec.name, 0.0),
                         seconds / max(1, len(rows)), spec.resources.num_cpus,
                         spec.resources.concurrency)


def _aggregate(stage: AggregateStage, outputs: dict[str, list[pa.Table]], scratch: Store,
               target: int) -> None:
    """Finalize an aggregate over the sample's source rows, as the run does over all rows."""
    sources = outputs.get(stage.source, [])
    if not sources:
        return
    source = pa.concat_tables(sources).select(list(stage.columns))
    tables = stage.finalize(stage.partial(source))
    for name, table in tables.items():
        outputs[f"aggregate:{name}"].append(table)
    scratch.write_unit(f"agg-{stage.name}", 0, tables, target)


def _pass_seconds(stages: list[StageEstimate], videos: int, cpus: float) -> float:
    """A pass's stages run side by side: the slower of all their CPU work spread over the
    CPUs and the slowest stage's own throughput, after the slowest set-up."""
    if not stages:
        return 0.0
    # a stage busy on a video keeps at least one core busy, whatever fraction it reserves
    work = sum(s.s_per_video * max(1.0, s.cpus) * videos for s in stages)
    slowest = max(s.s_per_video * videos / s.concurrency for s in stages)
    fixed = max(s.setup_s for s in stages) + sum(s.run_s for s in stages)
    return fixed + max(work / cpus, slowest)


def _collect(records: list[dict], outputs: dict[str, list[pa.Table]]) -> None:
    for record in records:
        for table, rows in record_outputs(record).items():
            outputs[table].append(rows)
