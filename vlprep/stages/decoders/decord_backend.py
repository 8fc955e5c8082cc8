"""decord's ``VideoReader.get_batch`` as a backend (ALPRO's own decoder).

decord numbers frames in presentation order like our index; a video where it counts a
different number of frames is refused rather than sampled at shifted positions. decord applies
the display rotation itself (as the ffmpeg CLI does); frames are turned back to the stored
orientation here so that the shared geometry code rotates every backend's frames once.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vlprep.stages.base import VideoError
from vlprep.stages.decoders.media import FrameIndex

CHUNK = 16  # frames per get_batch call: bounds memory for dense requests


def decode_targets(path: str, index: FrameIndex, targets: np.ndarray,
                   emit: Callable[[int, np.ndarray], None], threads: int = 0,
                   rotation: int = 0) -> None:
    import decord  # imported here: only workers that use decord load the native library

    try:
        reader = decord.VideoReader(path, ctx=decord.cpu(0), num_threads=threads)
    except Exception as e:  # noqa: BLE001 - decord raises RuntimeError or DECORDError
        raise VideoError(f"decord cannot open the video: {first_line(e)}") from None
    if len(reader) != len(index):
        raise VideoError(f"decord counts {len(reader)} frames, the container {len(index)}: "
                         "use decoder pyav for this video")
    for start in range(0, len(targets), CHUNK):
        chunk = [int(t) for t in targets[start:start + CHUNK]]
        try:
            batch = reader.get_batch(chunk).asnumpy()
        except Exception as e:  # noqa: BLE001
            raise VideoError(f"decode failed: {first_line(e)}") from None
        k = -(rotation // 90) % 4
        for t, image in zip(chunk, batch, strict=True):
            emit(t, np.rot90(image, k) if k else image)


def open_error(path: str) -> str | None:
    """decord's reason for not opening `path`, or None when it opens it."""
    import decord

    try:
        decord.VideoReader(path, ctx=decord.cpu(0), num_threads=1)
    except Exception as e:  # noqa: BLE001 - decord raises RuntimeError or DECORDError
        return f"decord cannot open the video: {first_line(e)}"
    return None


def first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__
