"""``<folder>/<video_id>.mp4`` links to the source videos, for trainers that decode raw video.

ALPRO and STOA-VLP's fine-tuning loaders open ``os.path.join(dir, video_id + ".mp4")``; the
store's `videos` table knows where each video is. Links keep the original bytes (the decoders
probe the container, so a .webm linked as .mp4 still opens).
"""

from __future__ import annotations

import os
from pathlib import Path

from vlprep.export.sink import OutDir, video_file
from vlprep.export.source import StoreSource


def link_videos(source: StoreSource, out: OutDir, folder: str = "videos",
                suffix: str = ".mp4") -> tuple[int, int]:
    """(linked, skipped): videos whose path is not a local existing file are skipped."""
    source.require("videos", "probe")
    linked = skipped = 0
    for batch in source.batches("videos", ["video_id", "path"]):
        for video_id, path in zip(batch.column("video_id").to_pylist(),
                                  batch.column("path").to_pylist(), strict=True):
            if not path or "://" in path or not Path(path).is_file():
                skipped += 1
                continue
            rel = f"{folder}/{video_file(video_id, suffix)}"
            tmp = out.temporary(rel)
            os.symlink(Path(path).resolve(), tmp)
            out.commit(tmp, rel)
            linked += 1
    return linked, skipped
