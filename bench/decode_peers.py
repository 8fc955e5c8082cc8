"""One decoder peer on one input, timed inside its own process (bench/decode.py runs it).

Runs in the peers' environment (bench/requirements-peers.txt), never the package's: decord2
installs into decord's own ``decord/`` folder. Imports happen before the clock starts; the
time covers opening the file through returning the frames (resized, centre-cropped RGB), as a
data loader would see it. Prints one JSON line: cpu and wall seconds, frames returned; saves
every `--keep`-th frame to `--out` for bench/decode.py's check that the frames are ours.

    python bench/decode_peers.py PEER MODE PATH --size 224 --indices 0,16,.. --out f.npy
    PEER: decord2 | vrrs | opencv | pyav_seek     MODE: sparse | dense
    (dense: --slots gives the source frame of every 30 fps output slot, ours)
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import resource
import time

import numpy as np


def cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def dims(w: int, h: int, size: int) -> tuple[int, int]:
    """Shorter side to `size`, longer side rounded down (ours and torchvision's rule)."""
    return (size, h * size // w) if w <= h else (w * size // h, size)


def crop(frames: np.ndarray, size: int) -> np.ndarray:
    h, w = frames.shape[1:3]
    top, left = (h - size) // 2, (w - size) // 2
    return frames[:, top:top + size, left:left + size]


def decord2(path: str, mode: str, idx: list[int], size: int, w: int, h: int,
            threads: int) -> np.ndarray:
    import decord

    width, height = dims(w, h, size)
    vr = decord.VideoReader(path, width=width, height=height, num_threads=threads)
    wanted = idx if mode == "sparse" else list(range(len(vr)))
    frames = vr.get_batch(wanted).asnumpy()
    return crop(frames, size)


def vrrs(path: str, mode: str, idx: list[int], size: int, w: int, h: int,
         threads: int) -> np.ndarray:
    from video_reader import PyVideoReader

    width, height = dims(w, h, size)
    width -= width % 2  # 0.4.5 fails on odd resized widths
    height -= height % 2
    vr = PyVideoReader(path, threads=threads, target_width=width, target_height=height,
                       resize_algo="bilinear")  # its default fast_bilinear aliases
    frames = vr.get_batch(idx) if mode == "sparse" else vr.decode()
    return crop(np.asarray(frames), size)


def opencv(path: str, mode: str, idx: list[int], size: int, w: int, h: int,
           threads: int) -> np.ndarray:
    import cv2

    cv2.setNumThreads(max(threads, 1))
    width, height = dims(w, h, size)
    params = [cv2.CAP_PROP_N_THREADS, threads] if hasattr(cv2, "CAP_PROP_N_THREADS") else []
    cap = cv2.VideoCapture(path, cv2.CAP_FFMPEG, params)
    out = []

    def keep(bgr: np.ndarray) -> None:
        small = cv2.resize(bgr, (width, height), interpolation=cv2.INTER_AREA)
        out.append(cv2.cvtColor(small, cv2.COLOR_BGR2RGB))

    if mode == "sparse":
        for i in idx:
            cap.set(cv2.CAP_PROP_POS_FRAMES, i)
            ok, bgr = cap.read()
            if ok:
                keep(bgr)
    else:
        while True:
            ok, bgr = cap.read()
            if not ok:
                break
            keep(bgr)
    cap.release()
    return crop(np.stack(out), size)


def pyav_seek(path: str, mode: str, idx: list[int], size: int, w: int, h: int,
              threads: int) -> np.ndarray:
    """The common PyAV recipe: per target, seek to it, decode until its pts, convert."""
    import av

    width, height = dims(w, h, size)
    out = []
    with av.open(path) as c:
        s = c.streams.video[0]
        s.thread_type = "AUTO" if threads != 1 else "SLICE"
        s.thread_count = threads
        rate, tb = s.average_rate, s.time_base
        start = s.start_time or 0
        for i in idx:
            target = start + round(i / rate / tb)
            c.seek(target, stream=s, backward=True)
            for frame in c.decode(s):
                if frame.pts is not None and frame.pts >= target:
                    out.append(frame.to_ndarray(width=width, height=height, format="rgb24",
                                                interpolation="BILINEAR"))
                    break
    return crop(np.stack(out), size)


MODULES = {"decord2": "decord", "vrrs": "video_reader", "opencv": "cv2", "pyav_seek": "av"}
PEERS = {"decord2": decord2, "vrrs": vrrs, "opencv": opencv, "pyav_seek": pyav_seek}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("peer", choices=sorted(PEERS))
    p.add_argument("mode", choices=("sparse", "dense"))
    p.add_argument("path")
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--indices", default="")
    p.add_argument("--slots", default="", help="dense: .npy of the source frame per slot")
    p.add_argument("--width", type=int, required=True)
    p.add_argument("--height", type=int, required=True)
    p.add_argument("--out", default="")
    p.add_argument("--keep", type=int, default=1)
    p.add_argument("--threads", type=int, default=1, help="decoder threads (0: the library's "
                   "default)")
    a = p.parse_args()
    idx = [int(x) for x in a.indices.split(",") if x]
    fn = PEERS[a.peer]
    importlib.import_module(MODULES[a.peer])  # the clock measures decoding, not imports
    c0, w0 = cpu(), time.perf_counter()
    frames = fn(a.path, a.mode, idx, a.size, a.width, a.height, a.threads)
    if a.mode == "dense" and a.slots:  # the 30 fps slots, as ffmpeg's fps=30 repeats/drops
        slots = np.load(a.slots)
        frames = frames[np.minimum(slots, len(frames) - 1)]
    wall, used = time.perf_counter() - w0, cpu() - c0
    if a.out:
        np.save(a.out, np.ascontiguousarray(frames[::a.keep]))
    print(json.dumps({"cpu": used, "wall": wall, "frames": int(len(frames)),
                      "pid": os.getpid()}))


if __name__ == "__main__":
    main()
