"""Backbone throughput: the model alone vs the stage that runs it, fed from memory.

For CLIP (ViT-B/16), S3D-G, the detector (Faster R-CNN R50-FPN v2 with VinVL
post-processing and region features) and VinVL's X152-C4 (``vinvl``, with the share of its
time in backbone, RPN, box head and post-processing), all full-size with random weights
(speed does not depend on the weights, except VinVL's post-processing a little):

- model-only: the stage's own nn.Module on an already-preprocessed tensor on the device,
  under inference mode and the stage's autocast;
- in-pipeline: the stage's ``__call__`` on per-video records holding uint8 frames in host
  memory (decode excluded): preprocessing, host-to-device copies, batching across videos,
  splitting back, fp16 conversion and the Arrow rows included.

Both are timed alternately, ``--repeats`` times, and the median is reported with the ratio
in-pipeline / model-only (the target is >= 0.8). Example:

    .venv/bin/python bench/backbones.py                      # GPU sizes (full inputs)
    .venv/bin/python bench/backbones.py --cpu-sizes          # small inputs for a CPU box
"""

from __future__ import annotations

import argparse
import json
import logging
import statistics
import time
from collections.abc import Callable

import numpy as np
import torch

from vlprep.models.accel import autocast, resolve_device
from vlprep.stages.base import Resources, Stage
from vlprep.stages.frames import SampledFrames


def records(videos: int, frames: int, size: int, key: str, seed: int = 0,
            window_starts: bool = False) -> list[dict]:
    rng = np.random.default_rng(seed)
    out = []
    for v in range(videos):
        pixels = rng.integers(0, 256, (frames, size, size, 3), dtype=np.uint8)
        starts = np.arange(frames // 30, dtype=np.float32) if window_starts else None
        out.append({"video_id": f"v{v}", "partition": 0, key: SampledFrames(
            pixels, np.arange(frames), np.arange(frames, dtype=np.float32) / 30,
            window_starts=starts)})
    return out


def timed(fn: Callable[[], object], device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def compare(name: str, unit: str, items: int, model_fn: Callable[[], object],
            stage_fn: Callable[[], object], device: torch.device, repeats: int) -> dict:
    model_fn(), stage_fn()  # warm-up (allocations, kernels, lazy set-up)
    model_t, stage_t = [], []
    for _ in range(repeats):  # alternate, so a noisy neighbour hits both alike
        model_t.append(timed(model_fn, device))
        stage_t.append(timed(stage_fn, device))
    model_rate = items / statistics.median(model_t)
    stage_rate = items / statistics.median(stage_t)
    row = {"backbone": name, "unit": unit, "model_only": model_rate,
           "in_pipeline": stage_rate, "ratio": stage_rate / model_rate}
    print(f"{name:9s} model-only {model_rate:9.2f} {unit}/s   in-pipeline "
          f"{stage_rate:9.2f} {unit}/s   ratio {row['ratio']:.2f}", flush=True)
    return row


def bench_clip(args, device: torch.device) -> dict:
    from vlprep.models.clip import normalise
    from vlprep.stages.clip import ClipOptions, ClipStage

    n = args.clip_videos * args.clip_frames
    opts = ClipOptions(init="random", device=str(device), frame_batch=n,
                       precision=args.precision, patch_tokens=args.clip_patches)
    stage: Stage = ClipStage(opts, Resources())
    stage.setup()
    batch = records(args.clip_videos, args.clip_frames, 224, "frames")
    x = normalise(torch.from_numpy(np.concatenate([r["frames"].frames for r in batch]))
                  .to(device))

    def model_only():
        with torch.inference_mode(), autocast(device, args.precision):
            return stage.model.model(x)  # the torch module behind the runtime

    return compare("clip", "images", n, model_only, lambda: stage(batch), device, args.repeats)


def bench_s3d(args, device: torch.device) -> dict:
    from vlprep.stages.s3d import S3dOptions, S3dStage

    clips, size = args.s3d_videos * args.s3d_seconds, args.s3d_size
    opts = S3dOptions(init="random", device=str(device), frame_batch=clips,
                      precision=args.precision)
    stage = S3dStage(opts, Resources())
    stage.setup()
    batch = records(args.s3d_videos, 30 * args.s3d_seconds, size, "frames", window_starts=True)
    x = torch.rand(clips, 3, 30, size, size, device=device)

    def model_only():
        with torch.inference_mode(), autocast(device, args.precision):
            return stage.model.model(x)  # the torch module behind the runtime

    return compare("s3d", "clips", clips, model_only, lambda: stage(batch), device,
                   args.repeats)


def detect_stage(args, device: torch.device, architecture: str):
    """A set-up random-weight detect stage taking all of a run's frames in one batch."""
    from vlprep.stages.detect import DetectOptions, DetectStage

    opts = DetectOptions(init="random", device=str(device),
                         frame_batch=args.det_videos * args.det_frames,
                         precision=args.precision, architecture=architecture,
                         min_size=args.det_min_size, max_size=args.det_max_size)
    stage = DetectStage(opts, Resources())
    stage.setup()
    return stage


def bench_detector(args, device: torch.device) -> dict:
    n = args.det_videos * args.det_frames
    stage = detect_stage(args, device, "resnet50_fpn_v2")
    size = args.det_size
    batch = records(args.det_videos, args.det_frames, size, "frames")
    x = torch.from_numpy(np.concatenate([r["frames"].frames for r in batch])).to(device)

    def model_only():
        with torch.inference_mode(), autocast(device, args.precision):
            return stage.model.model(x)  # the torch module behind the runtime

    return compare("detector", "images", n, model_only, lambda: stage(batch), device,
                   args.repeats)


def bench_vinvl(args, device: torch.device) -> dict:
    """VinVL X152-C4: model-only is ``detect_resized`` on frames already resized (networks,
    box logic and attributes); in-pipeline is the stage (resize, batching, rows). The part
    shares come from the model's own timers during the model-only runs."""
    from vlprep.models.vinvl_ops import resize_image

    n = args.det_videos * args.det_frames
    stage = detect_stage(args, device, "vinvl_x152c4")
    det = stage.model.model
    batch = records(args.det_videos, args.det_frames, args.det_size, "frames")
    frames = np.concatenate([r["frames"].frames for r in batch])
    resized = np.stack([resize_image(f, det.config) for f in frames])
    sizes = [(f.shape[1], f.shape[0]) for f in frames]

    def model_only():
        return det.detect_resized(resized, sizes)

    row = compare("vinvl", "images", n, model_only, lambda: stage(batch), device,
                  args.repeats)
    det.timings = {}
    model_only()
    total = sum(det.timings.values())
    row["shares"] = {k: v / total for k, v in det.timings.items()}
    det.timings = None
    print("vinvl     time shares: " + ", ".join(f"{k} {v:.0%}" for k, v in
                                                row["shares"].items()), flush=True)
    return row


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"])
    p.add_argument("--backbones", default="clip,s3d,detector,vinvl")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--cpu-sizes", action="store_true",
                   help="small batches and inputs, so a CPU run ends in minutes")
    p.add_argument("--clip-videos", type=int, default=32)
    p.add_argument("--clip-frames", type=int, default=8)
    p.add_argument("--clip-patches", default="none", choices=["none", "grid", "full"])
    p.add_argument("--s3d-videos", type=int, default=8)
    p.add_argument("--s3d-seconds", type=int, default=4)
    p.add_argument("--s3d-size", type=int, default=224)
    p.add_argument("--det-videos", type=int, default=4)
    p.add_argument("--det-frames", type=int, default=8)
    p.add_argument("--det-size", type=int, default=600, help="side of the square frames")
    p.add_argument("--det-min-size", type=int, default=600)
    p.add_argument("--det-max-size", type=int, default=1000)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    if args.cpu_sizes:
        args.clip_videos, args.clip_frames = 2, 4
        args.s3d_videos, args.s3d_seconds, args.s3d_size = 2, 1, 112
        args.det_videos, args.det_frames = 2, 1
        args.det_size = args.det_min_size = args.det_max_size = 320
        args.repeats = min(args.repeats, 3)
    logging.getLogger("vlprep").setLevel(logging.ERROR)  # the random-weights warnings
    device = resolve_device(args.device)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"device {name}, torch threads {torch.get_num_threads()}, precision "
          f"{args.precision}", flush=True)
    benches = {"clip": bench_clip, "s3d": bench_s3d, "detector": bench_detector,
               "vinvl": bench_vinvl}
    rows = [benches[b](args, device) for b in args.backbones.split(",")]
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"device": name, "args": vars(args), "results": rows}, f, indent=2)


if __name__ == "__main__":
    main()
