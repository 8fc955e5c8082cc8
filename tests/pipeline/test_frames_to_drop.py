"""Record keys are dropped after their last reader, per pass (from the declared contracts)."""

from __future__ import annotations

from vlprep.jobs.config import load_job
from vlprep.jobs.flow import keys_to_drop
from vlprep.pipeline.runner import plan_passes


def test_each_key_is_dropped_by_its_last_reader_in_its_pass():
    first, second = plan_passes(load_job("demo").stages)
    assert keys_to_drop(first.stages) == {
        "s3d_frames": ("probe",), "clip": ("frames",), "detect": ("stoa_frames",),
        "trajectories": ("detections",), "s3d": ("s3d_frames",)}
    assert keys_to_drop(second.stages) == {"prompter": ("frames",)}


def test_a_key_read_twice_is_kept_until_the_second_reader():
    job = load_job("demo", ["stages.detect.frames=frames"])  # detect reads the clip frames
    first = plan_passes(job.stages)[0]
    drops = keys_to_drop(first.stages)
    assert drops["detect"] == ("frames",) and "clip" not in drops
    assert drops["stoa_frames"] == ("stoa_frames",)  # never read: gone once sampled


def test_no_key_is_dropped_before_a_later_stage_reads_it():
    for step in plan_passes(load_job("demo").stages):
        dropped: set[str] = set()
        drops = keys_to_drop(step.stages)
        for spec in step.stages:
            assert not dropped & set(spec.contract.reads), spec.name
            dropped |= set(drops.get(spec.name, ()))
