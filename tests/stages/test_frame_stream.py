"""Streamed videoclip frames (issue 19): decoded chunk by chunk, the same frames as decoding
the video whole, with memory flat in the video's length."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from media import ffmpeg, sample_videos

from vlprep.stages.base import Resources
from vlprep.stages.decode import DecodeLimits, read_chunk
from vlprep.stages.frames import StreamedFrames
from vlprep.stages.sample import SampleOptions, SampleStage

SIZE = 32


def sampled(path: Path, **options) -> object:
    record = {"video_id": path.stem, "path": str(path), "partition": 0}
    SampleStage(SampleOptions(sampler="videoclip", size=SIZE, **options), Resources())([record])
    return record["frames"]


@pytest.mark.parametrize("isolate", [True, False])
def test_chunks_equal_the_whole_decode(isolate):
    path = sample_videos()["bikes"]  # 250 frames at 25 fps: 300 slots, 10 windows
    whole = sampled(path, stream=False, isolate=isolate)
    streamed = sampled(path, isolate=isolate)
    assert isinstance(streamed, StreamedFrames) and not isinstance(whole, StreamedFrames)
    assert len(pickle.dumps(streamed)) < 100_000  # the record carries no pixels
    np.testing.assert_array_equal(streamed.indices, whole.indices)
    np.testing.assert_array_equal(streamed.window_starts, whole.window_starts)
    chunks = list(streamed.chunks(7 * 30))
    assert [len(c) for c in chunks] == [210, 90]
    np.testing.assert_array_equal(np.concatenate(chunks), whole.frames)
    np.testing.assert_array_equal(streamed.frames, whole.frames)  # .frames decodes them all


def test_videos_stream_one_after_another_through_a_fresh_worker():
    """The worker the prefetch thread starts outlives each video (a child dies with the
    thread that started it)."""
    from vlprep.stages.decoders.isolation import worker_for

    streams = [sampled(sample_videos()[name])
               for name in ("bikes", "carphone_pristine", "bigbuckbunny")]
    worker = worker_for(4096)
    worker.stop()  # as in the s3d stage's process: the first chunk starts the worker
    starts = worker.starts
    for s in streams:
        assert sum(len(c) for c in s.chunks(2 * 30)) == len(s)
    assert worker.starts == starts + 1


def test_chunks_out_of_order_seek_and_still_match():
    path = sample_videos()["bikes"]  # keyframes at 0, 30, 76, 137, 187, 242
    whole = sampled(path, stream=False, isolate=False)
    s = sampled(path, isolate=False)
    limits = DecodeLimits(isolate=False)
    for start, count in [(200, 40), (35, 60), (0, 300), (290, 10), (95, 5)]:
        got = read_chunk(s.source.request, start, count, limits)
        np.testing.assert_array_equal(got, whole.frames[start:start + count])


@pytest.fixture(scope="module")
def half_hour_video(tmp_path_factory) -> Path:
    """30 minutes at 2 fps, 128 x 96: 54,000 output frames at 30 fps, 2 GB at 112 x 112."""
    path = tmp_path_factory.mktemp("long") / "long.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=128x96:rate=2:duration=1800", "-c:v", "libx264",
           "-preset", "ultrafast", "-g", "120", "-pix_fmt", "yuv420p", str(path))
    return path


STREAM_SCRIPT = """
import json, os, sys
from vlprep.stages.base import Resources
from vlprep.stages.decoders.isolation import worker_for
from vlprep.stages.sample import SampleOptions, SampleStage

def hwm(pid="self"):
    with open(f"/proc/{pid}/status") as f:
        return next(int(l.split()[1]) for l in f if l.startswith("VmHWM:")) / 1024

record = {"video_id": "long", "path": sys.argv[1], "partition": 0}
SampleStage(SampleOptions(sampler="videoclip", size=112), Resources())([record])
s = record["frames"]
frames, checksum = 0, 0
for chunk in s.chunks(16 * 30):
    frames += len(chunk)
    checksum += int(chunk[:, ::16, ::16].sum(dtype="int64"))
worker = hwm(worker_for(4096).proc.pid)
print(json.dumps({"frames": frames, "slots": len(s), "valid": int(s.valid.sum()),
                  "checksum": checksum, "parent_mb": hwm(), "worker_mb": worker}))
"""


def test_half_hour_video_streams_in_flat_memory(half_hour_video):
    """Held whole, the frames would take 2 GB; streamed, the stage process and its decode
    worker together peak under 1 GB."""
    proc = subprocess.run([sys.executable, "-c", STREAM_SCRIPT, str(half_hour_video)],
                          capture_output=True, text=True, check=True, timeout=600)
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["valid"] == 54_000 and got["frames"] == got["slots"] == 54_000
    assert got["checksum"] > 0  # real pixels, not zeros
    assert got["parent_mb"] + got["worker_mb"] < 1024, got


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_half_hour_video_through_s3d_into_one_row(half_hour_video):
    """The same 30 minutes through the sample stage and a random S3D (frames resized to 112,
    cropped to 16 so the full S3D-G runs 1,800 windows on a CPU in minutes) into one s3d
    row."""
    from vlprep.stages.base import OUTPUTS
    from vlprep.stages.s3d import S3dOptions, S3dStage

    record = {"video_id": "long", "path": str(half_hour_video), "partition": 0}
    SampleStage(SampleOptions(sampler="videoclip", size=112, crop=16), Resources())([record])
    assert isinstance(record["frames"], StreamedFrames)
    stage = S3dStage(S3dOptions(init="random", device="cpu", frame_batch=16), Resources())
    stage([record])
    assert record["frames"]._frames is None  # never held whole
    rows = record[OUTPUTS]["s3d"].to_pylist()
    assert len(rows) == 1 and rows[0]["num_windows"] == 1800
    np.testing.assert_allclose(rows[0]["window_start"], np.arange(1800), atol=1e-3)
    features = np.asarray(rows[0]["features"], np.float32)
    assert features.shape == (1800, 512) and np.isfinite(features).all()
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, atol=1e-2)
