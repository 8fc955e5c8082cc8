"""Bad inputs (issue 7 acceptance): each gives one `errors` row whose reason names the problem,
the rest of the batch goes on; hangs time out, crashes cost one video, memory stays capped."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from media import ffmpeg, sample_videos, write_audio_only
from PIL import Image

from vlprep.pipeline.guard import run_guarded
from vlprep.stages.base import OUTPUTS, Resources, VideoError
from vlprep.stages.decoders.isolation import worker_for
from vlprep.stages.decoders.job import SampleRequest
from vlprep.stages.probe import ProbeOptions, ProbeStage
from vlprep.stages.record import ERROR
from vlprep.stages.sample import SampleOptions, SampleStage

# reason patterns, in the order of the list
EXPECTED = {
    "zero_byte": r"^empty file \(0 bytes\)$",
    "truncated": r"^truncated file: the index points to byte \d+, the file has \d+ bytes$",
    "truncated_tail": r"^not a readable video: .*(moov atom not found|Invalid data)",
    "damaged_header": r"^not a readable video: Invalid data found when processing input$",
    "audio_only": r"^no video stream$",
    "image": r"^a still image \(png\), not a video$",
    "random_bytes": r"^not a readable video: Invalid data found when processing input$",
    "missing": r"^cannot read file: No such file or directory$",
}


@pytest.fixture(scope="module")
def bad_inputs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bad")
    bikes = sample_videos()["bikes"]
    faststart = d / "faststart.mp4"  # index first, as web videos are: truncation shows in it
    ffmpeg("-i", str(bikes), "-c", "copy", "-movflags", "+faststart", str(faststart))
    data = faststart.read_bytes()
    rng = np.random.default_rng(0)
    files = {
        "zero_byte": d / "zero.mp4",
        "truncated": d / "truncated.mp4",
        "truncated_tail": d / "truncated_tail.mp4",
        "damaged_header": d / "damaged.mp4",
        "audio_only": write_audio_only(d / "audio.m4a"),
        "image": d / "still.png",
        "random_bytes": d / "random.mp4",
        "missing": d / "missing.mp4",
    }
    files["zero_byte"].write_bytes(b"")
    files["truncated"].write_bytes(data[: len(data) // 3])
    files["truncated_tail"].write_bytes(bikes.read_bytes()[: os.path.getsize(bikes) // 3])
    files["damaged_header"].write_bytes(rng.bytes(4096) + data[4096:])
    Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(files["image"])
    files["random_bytes"].write_bytes(rng.bytes(200_000))
    return files


def records(paths: dict[str, Path | str]) -> list[dict]:
    return [{"video_id": k, "path": str(p), "partition": 0} for k, p in paths.items()]


def errors_of(batch: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in batch:
        if "errors" in r.get(OUTPUTS, {}):
            out[r["video_id"]] = r[OUTPUTS]["errors"].to_pylist()
    return out


@pytest.mark.parametrize("isolate", [True, False])
def test_probe_gives_one_readable_error_per_bad_input(bad_inputs, isolate):
    good = sample_videos()["carphone_pristine"]
    stage = ProbeStage(ProbeOptions(isolate=isolate, timeout=30), Resources(), name="probe")
    batch = run_guarded(stage, records({"good_before": good, **bad_inputs, "good_after": good}))
    errors = errors_of(batch)
    assert set(errors) == set(EXPECTED)
    for name, rows in errors.items():
        assert len(rows) == 1 and rows[0]["stage"] == "probe"
        assert re.search(EXPECTED[name], rows[0]["error"]), (name, rows[0]["error"])
    for r in batch:
        if r["video_id"].startswith("good"):
            assert ERROR not in r and r[OUTPUTS]["videos"].num_rows == 1


def test_sample_stage_alone_rejects_bad_inputs_the_same_way(bad_inputs):
    stage = SampleStage(SampleOptions(num_frames=2, size=32, timeout=30), Resources(),
                        name="sample")
    batch = run_guarded(stage, records({**bad_inputs, "good": sample_videos()["bikes"]}))
    errors = errors_of(batch)
    assert set(errors) == set(EXPECTED)
    for name, rows in errors.items():
        assert len(rows) == 1 and re.search(EXPECTED[name], rows[0]["error"]), rows
    assert batch[-1]["frames"].frames.shape == (2, 32, 32, 3)


def test_error_codes_classify_failures(bad_inputs):
    def code(name: str) -> str:
        with pytest.raises(VideoError) as info:
            ProbeStage(ProbeOptions(), Resources())([records({name: bad_inputs[name]})[0]])
        return info.value.code

    assert code("missing") == "missing"
    assert code("audio_only") == code("image") == "no_video_stream"
    assert code("random_bytes") == "unreadable"


@contextmanager
def stalled_fifo(path: Path, payload: bytes):
    """A named pipe that yields the first bytes of a video and then nothing, forever (until
    the test ends): what a stuck network mount or a dead HTTP peer looks like to FFmpeg."""
    os.mkfifo(path)
    done = threading.Event()

    def writer() -> None:
        try:
            with open(path, "wb") as f:
                f.write(payload)
                f.flush()
                done.wait(60)
        except OSError:
            pass  # the reader was killed

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    try:
        yield path
    finally:
        done.set()
        try:  # release a writer still waiting for a reader
            os.close(os.open(path, os.O_RDONLY | os.O_NONBLOCK))
        except OSError:
            pass
        thread.join(5)


def test_a_hang_becomes_a_timeout_row_and_the_job_goes_on(tmp_path):
    good = sample_videos()["bikes"]
    head = good.read_bytes()[:30_000]  # moov is at the end: the demuxer waits for more data
    with stalled_fifo(tmp_path / "stalled.mp4", head) as fifo:
        probe = ProbeStage(ProbeOptions(timeout=2), Resources(), name="probe")
        started = time.monotonic()
        batch = run_guarded(probe, records({"stuck": fifo, "good": good}))
        assert time.monotonic() - started < 20
    errors = errors_of(batch)
    assert list(errors) == ["stuck"]
    assert errors["stuck"][0]["error"] == "probe timed out after 2 s (decoder killed)"
    assert batch[1][OUTPUTS]["videos"].num_rows == 1  # a fresh worker took the next video

    with stalled_fifo(tmp_path / "stalled2.mp4", head) as fifo:
        sample = SampleStage(SampleOptions(timeout=2, num_frames=2, size=32), Resources(),
                             name="sample")
        batch = run_guarded(sample, records({"stuck": fifo, "good": good}))
    assert errors_of(batch)["stuck"][0]["error"] == "sample timed out after 2 s (decoder killed)"
    assert batch[1]["frames"].frames.shape == (2, 32, 32, 3)


def test_a_decoder_crash_costs_only_that_video(tmp_path):
    """SIGSEGV in the worker mid-video (as a crashing FFmpeg or decord would): an error for
    that video, and the next video is decoded by a restarted worker."""
    opts = ProbeOptions(timeout=60)
    worker = worker_for(opts.memory_limit_mb)
    good = sample_videos()["carphone_distorted"]
    with stalled_fifo(tmp_path / "crash.mp4", good.read_bytes()[:1000]) as fifo:
        def crash_soon() -> None:
            time.sleep(1.0)
            os.kill(worker.proc.pid, signal.SIGSEGV)

        killer = threading.Thread(target=crash_soon)
        killer.start()
        stage = ProbeStage(opts, Resources(), name="probe")
        batch = run_guarded(stage, records({"crashing": fifo, "good": good}))
        killer.join()
    errors = errors_of(batch)
    assert list(errors) == ["crashing"]
    assert errors["crashing"][0]["error"] == "decoder crashed during probe (killed by SIGSEGV)"
    assert batch[1][OUTPUTS]["videos"].num_rows == 1


def test_caps_reject_oversized_inputs_before_decoding():
    clip = sample_videos()["bigbuckbunny"]  # 1280 x 720, 5.28 s
    for stage_cls, options in ((ProbeStage, ProbeOptions), (SampleStage, SampleOptions)):
        stage = stage_cls(options(max_pixels=640 * 480), Resources())
        with pytest.raises(VideoError, match=r"^frame too large \(1280x720 = 921600 pixels > "
                                             r"max_pixels 307200\)$") as info:
            stage([records({"big": clip})[0]])
        assert info.value.code == "over_caps"
        stage = stage_cls(options(max_duration=2), Resources())
        with pytest.raises(VideoError, match=r"^video too long \(5\.3 s > max_duration 2 s\)$"):
            stage([records({"long": clip})[0]])
        stage = stage_cls(options(max_file_bytes=1000), Resources())
        with pytest.raises(VideoError, match=r"^file too large \(\d+ bytes > max_file_bytes"):
            stage([records({"heavy": clip})[0]])


def worker_baseline_mb() -> float:
    """Address space of a fresh decode worker with its libraries loaded (VmSize)."""
    code = ("import vlprep.stages.decoders.job\n"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmSize')][0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return int(out.stdout) / 1024


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux /proc")
def test_memory_limit_turns_a_blowup_into_an_error(tmp_path):
    big = tmp_path / "8k.mp4"  # one decoded frame alone takes 53 MB
    ffmpeg("-f", "lavfi", "-i", "color=c=gray:s=8192x4320:r=5:d=0.2", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", str(big))
    limit = int(worker_baseline_mb()) + 40  # room to start and decode small videos, not 8K
    stage = SampleStage(SampleOptions(num_frames=1, size=32, memory_limit_mb=limit),
                        Resources(), name="sample")
    small = tmp_path / "small.mp4"
    shutil.copy(sample_videos()["carphone_pristine"], small)
    batch = run_guarded(stage, records({"8k": big, "small": small}))
    errors = errors_of(batch)
    assert list(errors) == ["8k"], errors
    assert f"memory limit of {limit} MB reached" in errors["8k"][0]["error"]
    assert batch[1]["frames"].frames.shape == (1, 32, 32, 3)  # the worker carries on
    result = worker_for(1024).sample(SampleRequest(str(big), num_frames=1, size=32), 60)
    assert result.frames.shape == (1, 32, 32, 3)
    assert result.stats["worker_peak_rss_mb"] < 1024  # what the cap guarantees
