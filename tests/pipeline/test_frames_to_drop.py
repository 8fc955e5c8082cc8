"""Sampled frames are dropped after their last reader, per pass."""

from __future__ import annotations

from vlprep.jobs.config import load_job
from vlprep.pipeline.runner import frames_to_drop, plan_passes


def test_each_frames_key_is_dropped_by_its_last_reader_in_its_pass():
    first, second = plan_passes(load_job("demo").stages)
    assert frames_to_drop(first.stages) == {"clip": ("frames",), "detect": ("stoa_frames",),
                                           "s3d": ("s3d_frames",)}
    assert frames_to_drop(second.stages) == {"prompter": ("frames",)}


def test_a_key_read_twice_is_kept_until_the_second_reader():
    job = load_job("demo", ["stages.detect.frames=frames"])  # detect reads the clip frames
    first = plan_passes(job.stages)[0]
    drops = frames_to_drop(first.stages)
    assert drops["detect"] == ("frames",) and "clip" not in drops
    assert drops["stoa_frames"] == ("stoa_frames",)  # never read: gone once sampled
