"""Probe each video's container: the facts later stages and users need, one `videos` row.

Cheap (headers plus one decoded frame) and the first place a broken file shows up, so it runs
before any decoding stage and turns unreadable inputs into readable `errors` rows.
"""

from __future__ import annotations

import os

import av
import pyarrow as pa
from pydantic import Field

from vlprep.schemas import VIDEOS
from vlprep.stages.base import Record, Resources, Stage, StageOptions, VideoError, emit
from vlprep.stages.decode import av_reason


class ProbeOptions(StageOptions):
    max_file_bytes: int | None = Field(default=None, gt=0,
                                       description="bigger files fail instead of being decoded")


def probe_video(path: str, max_file_bytes: int | None = None) -> dict:
    """duration (s), fps, frame_count, width, height, codec, rotation (degrees), file_size.

    Duration comes from the video stream, else the container. The frame count is the
    container's (``stream.frames``), else estimated as round(duration * fps). Rotation is
    the display-matrix angle of the first decoded frame (counter-clockwise, in [0, 360));
    decoding that frame also proves the stream is decodable at all.
    """
    try:
        file_size = os.path.getsize(path)
    except OSError as e:
        raise VideoError(f"cannot read file: {e.strerror or e}") from None
    if file_size == 0:
        raise VideoError("empty file (0 bytes)")
    if max_file_bytes is not None and file_size > max_file_bytes:
        raise VideoError(f"file too large ({file_size} bytes > max_file_bytes {max_file_bytes})")
    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoError("no video stream")
            stream = container.streams.video[0]
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * stream.time_base)
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = 0.0
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            frame_count = stream.frames or round(duration * fps)
            frame = next(container.decode(stream), None)
            if frame is None:
                raise VideoError("no decodable video frame")
            return {
                "duration": duration,
                "fps": fps,
                "frame_count": int(frame_count),
                "width": int(stream.codec_context.width or frame.width),
                "height": int(stream.codec_context.height or frame.height),
                "codec": stream.codec_context.name,
                "rotation": int(round(frame.rotation)) % 360,
                "file_size": file_size,
            }
    except av.FFmpegError as e:
        raise VideoError(f"not a readable video: {av_reason(e)}") from None


class ProbeStage(Stage):
    """Adds ``probe`` (see :func:`probe_video`) and emits the video's `videos` row."""

    kind = "probe"
    Options = ProbeOptions
    stateful = False
    tables = ("videos",)
    default_resources = Resources(num_cpus=1.0, batch_size=16)

    def process(self, record: Record) -> None:
        opts: ProbeOptions = self.options  # type: ignore[assignment]
        info = probe_video(record["path"], opts.max_file_bytes)
        record["probe"] = info
        row = {"video_id": record["video_id"], "path": record["path"],
               **{k: info[k] for k in ("duration", "fps", "frame_count", "width", "height",
                                       "codec", "file_size")}}
        emit(record, "videos", pa.Table.from_pylist([row], schema=VIDEOS))
