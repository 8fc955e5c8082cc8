"""Decoder fallback: a file the chosen decoder (decord, the ffmpeg CLI) cannot read is decoded
with PyAV, numbered the same way, and the run summary says so; ``fallback: false`` keeps the
strict behaviour; a file no backend reads is one error naming each backend's reason."""

from __future__ import annotations

import numpy as np
import pytest
from media import pattern_frames, write_av1

from vlprep.pipeline.guard import run_guarded
from vlprep.pipeline.report import write_batch
from vlprep.pipeline.runner import RunCounts, RunResult, run_summary
from vlprep.stages.base import Resources, VideoError
from vlprep.stages.decoders.decord_backend import open_error
from vlprep.stages.probe import ProbeOptions, ProbeStage
from vlprep.stages.record import ERROR, NOTES, OUTPUTS
from vlprep.stages.sample import SampleOptions, SampleStage
from vlprep.store.writer import BatchWriter


@pytest.fixture(scope="module")
def av1_clip(tmp_path_factory):
    path = write_av1(tmp_path_factory.mktemp("av1") / "av1.mp4", pattern_frames(20, 96, 64))
    assert open_error(str(path)) is not None  # decord really cannot open it
    return path


def sample(path, **options) -> dict:
    record = {"video_id": "v", "path": str(path), "partition": 0}
    stages = [ProbeStage(ProbeOptions(), Resources(), name="probe"),
              SampleStage(SampleOptions(num_frames=4, size=32, **options), Resources(),
                          name="sample")]
    for stage in stages:
        (record,) = run_guarded(stage, [record])
    return record


def test_an_av1_clip_with_decoder_decord_is_decoded_by_pyav(av1_clip, tmp_path):
    record = sample(av1_clip, decoder="decord")
    assert ERROR not in record and record[OUTPUTS]["videos"].num_rows == 1
    frames = record["frames"]
    assert frames.decoder == "pyav" and frames.frames.shape == (4, 32, 32, 3)
    assert "decord cannot open the video" in frames.fallback
    direct = sample(av1_clip, decoder="pyav")["frames"]
    assert direct.decoder == "pyav" and direct.fallback is None
    assert (frames.indices == direct.indices).all() and (frames.times == direct.times).all()
    np.testing.assert_array_equal(frames.frames, direct.frames)  # same frames, same numbers
    assert record[NOTES] == {"sample": f"decoded with pyav: {frames.fallback}"}
    counts = RunCounts()  # the note reaches the summary as a worker's batch report says it
    for video in write_batch(BatchWriter(str(tmp_path / "store"), 1 << 20), [record]).videos:
        counts.note_video(video)
    summary = run_summary(RunResult("s", 1, 0, counts, 1.0))["stages"]["sample"]
    assert summary["notes"] == 1 and summary["notes_by_video"]["v"].startswith("decoded with")


def test_fallback_false_keeps_the_strict_behaviour(av1_clip):
    with pytest.raises(VideoError, match="^decord cannot open the video"):
        SampleStage(SampleOptions(num_frames=4, size=32, decoder="decord", fallback=False),
                    Resources())([{"video_id": "v", "path": str(av1_clip), "partition": 0}])
    record = {"video_id": "v", "path": str(av1_clip), "partition": 0}
    SampleStage(SampleOptions(num_frames=4, size=32, decoder="pyav"), Resources())([record])
    assert NOTES not in record  # nothing to note when the chosen decoder worked


@pytest.mark.parametrize("decoder", ["decord", "ffmpeg"])
def test_a_file_no_backend_reads_is_one_error_naming_each(tmp_path, decoder):
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(np.random.default_rng(0).bytes(50_000))
    stage = SampleStage(SampleOptions(num_frames=2, size=32, decoder=decoder), Resources(),
                        name="sample")
    (record,) = run_guarded(stage, [{"video_id": "b", "path": str(broken), "partition": 0}])
    rows = record[OUTPUTS]["errors"].to_pylist()
    assert len(rows) == 1 and rows[0]["stage"] == "sample"
    reason = rows[0]["error"]
    own = "decord cannot open the video: " if decoder == "decord" else "ffmpeg cannot read it: "
    assert reason.startswith(own) and "; pyav: not a readable video" in reason


@pytest.mark.slow  # a real Ray run: about 20 s
def test_a_run_with_decord_writes_the_av1_video_and_notes_the_fallback(tmp_path, av1_clip):
    """The real CLI: the AV1 clip gets its `videos` row and `clip_frames` rows with
    decoder: decord, the run summary lists it, and `vlprep run` says so."""
    import json

    from e2e_helpers import read_rows, run_cli, write_job
    from media import sample_videos

    manifest = tmp_path / "m.csv"
    manifest.write_text(f"video_id,path\nav1,{av1_clip}\nbikes,{sample_videos()['bikes']}\n")
    job = write_job(tmp_path / "job.yaml", manifest, tmp_path / "store", num_frames=2)
    result = run_cli("run", str(job), "--set", "stages.sample.decoder=decord", timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert {r["video_id"] for r in read_rows(tmp_path / "store", "videos")} == {"av1", "bikes"}
    frames = read_rows(tmp_path / "store", "clip_frames")
    assert sum(r["video_id"] == "av1" for r in frames) == 2
    (summary,) = [json.loads(p.read_text()) for p in (tmp_path / "store" / "_runs").iterdir()]
    sample = summary["stages"]["sample"]
    assert sample["notes"] == 1 and sample["errors"] == 0
    assert sample["notes_by_video"]["av1"].startswith("decoded with pyav: decord cannot open")
    assert "sample: 1 videos with a note" in result.stdout
