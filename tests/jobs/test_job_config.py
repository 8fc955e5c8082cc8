"""Job files: validation with one-line errors naming the key, overrides, recipes."""

from __future__ import annotations

import pytest
import yaml

from vlprep.jobs.config import JobError, apply_override, builtin_jobs, load_job, named_recipes


def _write(tmp_path, body: dict):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(body))
    return str(path)


BASE = {"manifest": "m.csv", "store": "s", "stages": {"probe": {}, "sample": {"num_frames": 4}}}


def test_builtin_demo_loads_with_typed_stages():
    assert "demo" in builtin_jobs()
    job = load_job("demo")
    names = [s.name for s in job.stages]
    assert names[:4] == ["probe", "texts", "sample", "clip"]
    sample = job.stages[2]
    assert sample.options.num_frames == 8 and sample.resources.batch_size == 2


@pytest.mark.parametrize("override, message", [
    ("stages.sample.num_framez=3", "stages.sample.num_framez: unknown key"),
    ("stages.sample.num_frames=many", "stages.sample.num_frames:"),
    ("partition_size=0", "partition_size:"),
    ("colour=blue", "colour: unknown key"),
    ("stages.sample.batch_size=-1", "stages.sample.batch_size:"),
])
def test_errors_are_one_line_naming_the_key(tmp_path, override, message):
    with pytest.raises(JobError) as info:
        load_job(_write(tmp_path, BASE), [override])
    text = str(info.value)
    assert message in text and "\n" not in text


def test_missing_keys_and_unknown_kinds(tmp_path):
    with pytest.raises(JobError, match="store: required key missing"):
        load_job(_write(tmp_path, {"manifest": "m", "stages": {"probe": {}}}))
    with pytest.raises(JobError, match="unknown stage kind 'teleport'"):
        load_job(_write(tmp_path, {**BASE, "stages": {"teleport": {}}}))
    with pytest.raises(JobError, match="no such job file"):
        load_job(str(tmp_path / "absent.yaml"))
    with pytest.raises(JobError, match="not valid YAML"):
        (tmp_path / "bad.yaml").write_text("stages: [\n")
        load_job(str(tmp_path / "bad.yaml"))


def test_overrides_parse_values_as_yaml(tmp_path):
    job = load_job(_write(tmp_path, BASE), ["store=/tmp/x", "stages.sample.num_frames=12",
                                            "stages.sample.batch_size=7", "partition_size=5"])
    assert job.store == "/tmp/x" and job.file.partition_size == 5
    sample = job.stages[1]
    assert sample.options.num_frames == 12 and sample.resources.batch_size == 7
    assert sample.store == "/tmp/x"


def test_stage_list_form_and_list_overrides(tmp_path):
    body = {**BASE, "stages": [{"kind": "probe"}, {"kind": "sample", "name": "s12",
                                                    "num_frames": 12, "key": "f12"}]}
    job = load_job(_write(tmp_path, body), ["stages.s12.num_frames=6", "stages.0.batch_size=3"])
    assert [s.name for s in job.stages] == ["probe", "s12"]
    assert job.stages[1].options.num_frames == 6 and job.stages[0].resources.batch_size == 3
    with pytest.raises(JobError, match="kind: required"):
        load_job(_write(tmp_path, {**BASE, "stages": [{"num_frames": 3}]}))
    with pytest.raises(JobError, match="no such stage"):
        apply_override({"stages": [{"kind": "probe"}]}, "stages.nope.x=1")


def test_named_recipes_pin_settings_and_jobs_override_them(tmp_path):
    assert set(named_recipes()) >= {"videoclip-s3d", "alpro-pretrain", "alpro-eval", "stoa"}
    body = {"manifest": "m", "store": "s", "recipe": "alpro-eval",
            "stages": {"clip": {"init": "random"}}}
    job = load_job(_write(tmp_path, body))
    by_name = {s.name: s for s in job.stages}
    assert list(by_name) == ["probe", "texts", "sample", "clip"]
    assert by_name["sample"].options.num_frames == 8
    assert by_name["sample"].options.sampler == "uniform"
    assert by_name["clip"].options.init == "random"
    with pytest.raises(JobError, match="unknown recipe 'nope'"):
        load_job(_write(tmp_path, {**body, "recipe": "nope"}))


@pytest.mark.parametrize("recipe, random_stages", [
    ("videoclip-s3d", ["s3d"]),
    ("alpro-pretrain", ["clip", "prompter"]),
    ("alpro-eval", ["clip"]),
    ("stoa", ["clip", "detect"]),
])
def test_every_named_recipe_builds(tmp_path, recipe, random_stages):
    stages = {name: {"init": "random"} for name in random_stages}
    if "prompter" in stages:
        stages["prompter"]["tokenizer"] = "builtin:demo"
    body = {"manifest": "m", "store": "s", "recipe": recipe, "stages": stages}
    job = load_job(_write(tmp_path, body))
    assert all(s.options.init == "random" for s in job.stages if s.name in random_stages)


def test_recipes_pin_the_published_settings(tmp_path):
    """The settings README's "method settings: published vs recipe" table lists."""
    def stages(recipe: str, *random: str) -> dict:
        body = {"manifest": "m", "store": "s", "recipe": recipe,
                "stages": {name: {"init": "random"} for name in random}}
        if "prompter" in random:
            body["stages"]["prompter"]["tokenizer"] = "builtin:demo"
        return {s.name: s.options for s in load_job(_write(tmp_path, body)).stages}

    assert stages("videoclip-s3d", "s3d")["s3d"].normalize is True
    stoa = stages("stoa", "clip", "detect")
    assert (stoa["clip"].patch_tokens, stoa["clip"].patch_block) == ("full", -1)
    ev = stages("alpro-eval", "clip")["sample"]
    assert (ev.resize, ev.size, ev.crop, ev.num_frames) == ("squash", 224, None, 8)
    pretrain = stages("alpro-pretrain", "clip", "prompter")
    for name in ("sample", "prompter_frames"):
        pt = pretrain[name]
        assert (pt.resize, pt.size, pt.crop, pt.num_frames) == ("squash", 256, 224, 4)
    traj = stoa["trajectories"]
    assert (traj.selection, traj.max_objects, traj.candidates, traj.max_trajectories,
            traj.cross_class_iou) == ("stoa", 10, 20, 20, 0.5)


def test_custom_ray_resources_pin_a_stage(tmp_path):
    body = {**BASE, "stages": {"probe": {}, "sample": {"num_frames": 4,
                                                       "resources": {"gpu_node": 1}}}}
    job = load_job(_write(tmp_path, body))
    assert job.stages[1].resources.resources == {"gpu_node": 1.0}
    assert job.stages[0].resources.resources == {}
    assert job.stages[1].resources.batch_size == 4  # the stage's other defaults stay
    with pytest.raises(JobError, match=r"stages\.sample\.resources\.gpu_node:"):
        load_job(_write(tmp_path, body), ["stages.sample.resources.gpu_node=0"])
