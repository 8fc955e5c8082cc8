"""The ffmpeg CLI as a backend (ffmpeg-python builds the command; the binary is the system's
``ffmpeg`` or imageio-ffmpeg's).

The ``select`` filter keeps the target frames by their number ``n`` in decode output order,
which is our presentation index; ``-fps_mode passthrough`` stops the CLI from duplicating or
dropping frames and ``-noautorotate`` leaves rotation to the shared geometry code. ffmpeg
decodes from the start up to the last target (it cannot seek to a frame number), and stops
there. Frames come through the pipe as RGB, as MMPT's extractor reads them.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from typing import BinaryIO

import numpy as np

from vlprep.stages.base import VideoError
from vlprep.stages.decoders.media import FrameIndex


@functools.lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """imageio-ffmpeg's static binary, else ``ffmpeg`` on PATH."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        found = shutil.which("ffmpeg")
        if found is None:
            raise VideoError("no ffmpeg binary (pip install imageio-ffmpeg)") from None
        return found


def select_expr(targets: np.ndarray) -> str:
    """``between(n,a,b)`` terms for the runs of consecutive targets."""
    terms, start = [], int(targets[0])
    prev = start
    for t in (int(x) for x in targets[1:]):
        if t != prev + 1:
            terms.append(f"between(n,{start},{prev})")
            start = t
        prev = t
    terms.append(f"between(n,{start},{prev})")
    return "+".join(terms)


def command(path: str, targets: np.ndarray, pix_fmt: str, threads: int) -> list[str]:
    try:
        import ffmpeg  # ffmpeg-python
    except ImportError:
        raise VideoError("decoder ffmpeg needs ffmpeg-python: pip install 'vlprep[ffmpeg]'",
                         code="unreadable") from None

    source = ffmpeg.input(path, noautorotate=None, threads=threads)
    out = source.video.filter("select", select_expr(targets)).output(
        "pipe:", format="rawvideo", pix_fmt=pix_fmt, fps_mode="passthrough",
        **{"frames:v": len(targets)})
    return out.global_args("-nostdin", "-hide_banner", "-loglevel", "error").compile(
        cmd=ffmpeg_exe())


def decode_targets(path: str, index: FrameIndex, targets: np.ndarray, width: int, height: int,
                   emit: Callable[[int, np.ndarray], None], threads: int = 0) -> None:
    frame_bytes = width * height * 3
    buffer = np.empty((height, width, 3), np.uint8)  # reused: emit converts it at once
    view = memoryview(buffer).cast("B")
    with tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(command(path, targets, "rgb24", threads),
                                stdout=subprocess.PIPE, stderr=errors)
        assert proc.stdout is not None
        got = 0
        try:
            for t in targets:
                if _read_into(proc.stdout, view) < frame_bytes:
                    break
                emit(int(t), buffer)
                got += 1
        finally:
            proc.stdout.close()
            proc.wait()
        if got < len(targets):
            errors.seek(0)
            lines = errors.read().decode(errors="replace").strip().splitlines()
            why = lines[-1] if lines else f"exit status {proc.returncode}"
            raise VideoError(f"ffmpeg returned {got} of {len(targets)} frames: {why}")


def open_error(path: str) -> str | None:
    """The ffmpeg CLI's reason for not decoding the first frame of `path`, or None."""
    try:
        proc = subprocess.run([ffmpeg_exe(), "-nostdin", "-hide_banner", "-loglevel", "error",
                               "-i", path, "-map", "0:v:0", "-frames:v", "1", "-f", "null",
                               "-"], capture_output=True, text=True, errors="replace",
                              timeout=60)
    except subprocess.TimeoutExpired:
        return "ffmpeg cannot read it: no frame after 60 s"
    lines = proc.stderr.strip().splitlines()
    if proc.returncode == 0:
        return None
    return f"ffmpeg cannot read it: {lines[-1] if lines else f'exit status {proc.returncode}'}"


def _read_into(stream: BinaryIO, view: memoryview) -> int:
    """Fill `view` from a pipe; fewer bytes only at end of stream."""
    filled = 0
    while filled < len(view):
        n = stream.readinto(view[filled:])  # type: ignore[attr-defined]
        if not n:
            break
        filled += n
    return filled
