"""Executors run one pass of a job's stages over input partitions; the runner does the rest.

The runner (store, recipe, passes, commits) is the same whichever executor runs a pass: it
consumes the stream of finished-record blocks an executor yields, and its aggregate
partials. Two executors:

- ``ray`` (the default): a streaming Ray Data plan, one block per input partition,
  stateless stages as Ray tasks, stages with a model as actor pools, each with the
  resources it declares.
- ``local``: one process, no Ray; each partition's videos go through the stages in order,
  in the stages' batch sizes. For debugging (pdb works), tiny jobs, fast tests, and for
  `vlprep plan` and `vlprep scan`, which run stages on a few videos or one at a time.

Both call the same per-stage code (:func:`vlprep.pipeline.adapters.run_timed`: guarded,
journaled, timed, keys dropped after their last reader), so they write the same rows.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Protocol

import pyarrow as pa

from vlprep.errors import JobError
from vlprep.jobs.flow import keys_to_drop
from vlprep.pipeline import adapters
from vlprep.pipeline.report import write_batch
from vlprep.stages.record import Record
from vlprep.store.committer import compact_here
from vlprep.store.writer import BatchWriter, WrittenFile

if TYPE_CHECKING:
    from concurrent.futures import Future

    from vlprep.jobs.config import Job, StageSpec
    from vlprep.stages.base import AggregateStage, Resources, Stage
    from vlprep.store import Store

AGGREGATE_IN_DRIVER_BYTES = 256 * 2**20  # smaller source tables are aggregated in the driver
EXECUTORS = ("ray", "local")
MAX_COMPACTORS = 16  # compaction actors: one per node up to this many
log = logging.getLogger("vlprep")


class Executor(Protocol):
    name: str

    def blocks(self, job: Job, store: Store, stages: list[StageSpec], partitions: list[int],
               failed: frozenset[str], writer: BatchWriter) -> Iterator[pa.Table]:
        """Run `stages` over the videos of `partitions`; the last stage's worker writes each
        batch's rows through `writer`; yield the batches' reports (pipeline.report), in any
        order, each video once."""
        ...

    def compact(self, writer: BatchWriter, unit: str, files: list[WrittenFile]
                ) -> Future[list[WrittenFile]]:
        """Start merging one unit's small files (on a worker); a future of the new files."""
        ...

    def partials(self, job: Job, store: Store, spec: StageSpec, stage: AggregateStage,
                 files: list[str]) -> Iterator[pa.Table]:
        """The aggregate's partial results over the source table's `files`."""
        ...


def executor(name: str, address: str | None = None) -> Executor:
    if name == "ray":
        return RayExecutor(address)
    if name == "local":
        if address:
            raise JobError("--address applies to the ray executor only")
        return LocalExecutor()
    raise JobError(f"unknown executor {name!r} (known: {', '.join(EXECUTORS)})")


def _local_partials(store: Store, stage: AggregateStage, files: list[str], batch_size: int
                    ) -> Iterator[pa.Table]:
    import pyarrow.dataset as pads

    source = pads.dataset(files, filesystem=store.fs, format="parquet")
    for batch in source.to_batches(columns=list(stage.columns), batch_size=batch_size):
        yield stage.partial(pa.Table.from_batches([batch]))


class LocalExecutor:
    """Stages in order in this process, each built and set up once.

    `store` overrides the store the stages read earlier tables from (plan's scratch store);
    `journal: False` runs without the crash journal (nothing to resume in a scratch run);
    `worker_threads` (default) gives each stage the torch threads its declared CPUs give it
    in a Ray worker (at least one): the same threads give the same floating-point sums, so
    the same rows; and plan times a stage as it will run. ``setup_seconds`` records each
    set-up's time.
    """

    name = "local"

    def __init__(self, store: str | None = None, journal: bool = True,
                 worker_threads: bool = True):
        self.store = store
        self.journal = journal
        self.worker_threads = worker_threads
        self.stages: dict[str, Stage] = {}
        self.setup_seconds: dict[str, float] = {}

    def stage(self, spec: StageSpec) -> Stage:
        stage = self.stages.get(spec.name)
        if stage is None:
            stage = spec.cls(spec.options, spec.resources, spec.name, self.store or spec.store)
            started = time.perf_counter()
            with self._threads(spec):
                stage.setup()
            self.setup_seconds[spec.name] = time.perf_counter() - started
            self.stages[spec.name] = stage
        return stage

    @contextmanager
    def _threads(self, spec: StageSpec) -> Iterator[None]:
        if not self.worker_threads:
            yield
            return
        import torch

        before = torch.get_num_threads()
        torch.set_num_threads(max(1, int(spec.resources.num_cpus)))
        try:
            yield
        finally:
            torch.set_num_threads(before)

    def run(self, stages: list[StageSpec], records: list[Record], batch_size: int | None = None
            ) -> list[Record]:
        """The records through every stage, in batches of each stage's batch size (capped
        at `batch_size`, as the Ray plan caps them at the partition size)."""
        drops = keys_to_drop(stages)
        for spec in stages:
            stage = self.stage(spec)
            journal = adapters.journal_of(spec) if self.journal else None
            size = min(spec.resources.batch_size, batch_size or spec.resources.batch_size)
            with self._threads(spec):
                for start in range(0, len(records), size):
                    adapters.run_timed(stage, records[start:start + size], journal,
                                       drops.get(spec.name, ()))
        return records

    def blocks(self, job: Job, store: Store, stages: list[StageSpec], partitions: list[int],
               failed: frozenset[str], writer: BatchWriter) -> Iterator[pa.Table]:
        for pid in partitions:
            state = adapters.partitions_to_state(pa.table({"partition": [pid]}), store.uri,
                                                 failed)
            records = self.run(stages, adapters.to_records(state), job.file.partition_size)
            yield write_batch(writer, records).to_table()

    compact = staticmethod(compact_here)

    def partials(self, job: Job, store: Store, spec: StageSpec, stage: AggregateStage,
                 files: list[str]) -> Iterator[pa.Table]:
        return _local_partials(store, stage, files, spec.resources.batch_size or 4096)


class RayExecutor:
    """Today's Ray Data plan: one block per input partition, streaming through the stages."""

    name = "ray"

    def __init__(self, address: str | None = None):
        self.address = address
        self._compactors: list = []  # actor handles: they end with this executor
        self._turn = 0

    def blocks(self, job: Job, store: Store, stages: list[StageSpec], partitions: list[int],
               failed: frozenset[str], writer: BatchWriter) -> Iterator[pa.Table]:
        import ray

        init_ray(job, self.address)
        # One block per input partition: blocks are what flows between stages, so several let
        # every stage work at once. (Ray's Parquet reader merges small files into one block,
        # and one block would go through the stages in turn.)
        ds = ray.data.from_items([{"partition": pid} for pid in partitions],
                                 override_num_blocks=len(partitions))
        ds = ds.map_batches(adapters.partitions_to_state,
                            fn_kwargs={"store_uri": store.uri, "failed": failed},
                            batch_format="pyarrow", batch_size=None)
        drops = keys_to_drop(stages)
        for i, spec in enumerate(stages):
            ds = _add_stage(ds, spec, job.file.partition_size, drops.get(spec.name, ()),
                            writer=writer if i == len(stages) - 1 else None)
        yield from ds.iter_batches(batch_format="pyarrow", batch_size=None)

    def compact(self, writer: BatchWriter, unit: str, files: list[WrittenFile]
                ) -> Future[list[WrittenFile]]:
        """On a pool of long-lived compaction actors, one per node (spread), made on first
        use; the driver only learns the new files' names. They reserve no CPU: they must not
        wait for the pass's actors to let go of theirs. (A task per compaction needs a worker
        process, and Ray stops idle workers beyond the CPU count after a second, so most
        compactions paid a Python start-up: a quarter of the wall time on 2 cores.)"""
        import ray

        if not self._compactors:
            nodes = sum(1 for node in ray.nodes() if node["Alive"])
            actor = ray.remote(num_cpus=0, max_concurrency=2, max_restarts=2,
                               max_task_retries=2)(adapters.Compactor)
            self._compactors = [actor.options(scheduling_strategy="SPREAD").remote()
                                for _ in range(max(1, min(nodes, MAX_COMPACTORS)))]
        self._turn += 1
        chosen = self._compactors[self._turn % len(self._compactors)]
        return chosen.compact.remote(writer, unit, files).future()

    def partials(self, job: Job, store: Store, spec: StageSpec, stage: AggregateStage,
                 files: list[str]) -> Iterator[pa.Table]:
        """Partials in parallel Ray tasks, streamed to the driver; a small table is done in
        the driver (Ray's task start-up would cost more than the work itself)."""
        res = spec.resources
        if sum(info.size or 0 for info in store.fs.get_file_info(files)) \
                <= AGGREGATE_IN_DRIVER_BYTES:
            yield from _local_partials(store, stage, files, res.batch_size or 4096)
            return
        import ray

        init_ray(job, self.address)
        ds = ray.data.read_parquet(files, filesystem=store.fs).select_columns(
            list(stage.columns))
        ds = ds.map_batches(adapters.run_partial, fn_kwargs={"spec": spec},
                            batch_format="pyarrow", batch_size=res.batch_size,
                            num_cpus=res.num_cpus, **custom_resources(res),
                            compute=ray.data.TaskPoolStrategy(size=res.concurrency))
        yield from ds.iter_batches(batch_format="pyarrow", batch_size=None)


def custom_resources(res: Resources) -> dict:
    """map_batches' ``resources`` argument: the stage's custom Ray resources, if any."""
    return {"resources": dict(res.resources)} if res.resources else {}


def _add_stage(ds, spec: StageSpec, partition_size: int, drop: tuple[str, ...] = (),
               writer: BatchWriter | None = None):
    import ray

    res = spec.resources
    # a batch larger than a partition's block would make Ray Data wait for further blocks,
    # and the stages would then take the whole run in turn instead of side by side
    batch_size = min(res.batch_size, partition_size)
    common = dict(batch_format="pyarrow", batch_size=batch_size, num_cpus=res.num_cpus,
                  num_gpus=res.num_gpus or None, zero_copy_batch=False, **custom_resources(res))
    if spec.cls.stateful:
        return ds.map_batches(adapters.StageActor, fn_constructor_args=(spec, drop, writer),
                              compute=ray.data.ActorPoolStrategy(
                                  size=res.concurrency,
                                  # a batch goes to an idle actor rather than queueing behind
                                  # a busy one while the pool's other actors still start up
                                  max_tasks_in_flight_per_actor=1 if res.concurrency > 1 else 2),
                              **common)
    return ds.map_batches(adapters.run_stage_task,
                          fn_kwargs={"spec": spec, "drop": drop, "writer": writer},
                          compute=ray.data.TaskPoolStrategy(size=res.concurrency), **common)


def init_ray(job: Job, address: str | None) -> None:
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
