"""Recipes: what made a store, checksums of checkpoints, refusal of mixed recipes."""

import hashlib

import pytest

from vlprep.jobs.config import load_job
from vlprep.pipeline.provenance import (
    RecipeError,
    checkpoint_sha256,
    first_difference,
    job_recipe,
    weights_of,
)
from vlprep.stages.clip import ClipOptions


def test_file_digest_is_sha256sum(tmp_path):
    f = tmp_path / "w.pth"
    f.write_bytes(b"weights" * 1000)
    assert checkpoint_sha256(f) == hashlib.sha256(b"weights" * 1000).hexdigest()


def test_directory_digest_covers_names_and_contents(tmp_path):
    d = tmp_path / "m"
    d.mkdir()
    (d / "config.json").write_text("{}")
    (d / "model.safetensors").write_bytes(b"abc")
    first = checkpoint_sha256(d)
    (d / "model.safetensors").write_bytes(b"abd")
    assert checkpoint_sha256(d) != first
    (d / "model.safetensors").write_bytes(b"abc")
    assert checkpoint_sha256(d) == first
    (d / "model.safetensors").rename(d / "other.safetensors")
    assert checkpoint_sha256(d) != first


def test_expected_sha256_is_checked(tiny_clip_dir):
    digest = checkpoint_sha256(tiny_clip_dir)
    good = ClipOptions(checkpoint=str(tiny_clip_dir), sha256=digest)
    assert weights_of(good) == {"checkpoint": str(tiny_clip_dir), "sha256": digest}
    bad = ClipOptions(checkpoint=str(tiny_clip_dir), sha256="0" * 64)
    with pytest.raises(RecipeError, match="does not match"):
        weights_of(bad)
    assert weights_of(ClipOptions(init="random", seed=3)) == {"init": "random", "seed": 3}


def test_job_recipe_has_options_without_runtime_ones():
    recipe = job_recipe(load_job("demo"))
    stages = {s["name"]: s for s in recipe["stages"]}
    assert stages["sample"]["options"]["num_frames"] == 8
    assert stages["clip"]["weights"] == {"init": "random", "seed": 0}
    assert "device" not in stages["clip"]["options"]
    faster = job_recipe(load_job("demo", ["stages.clip.batch_size=64",
                                          "stages.clip.frame_batch=8"]))
    assert first_difference(recipe, faster) is None  # speed settings are not the recipe
    other = job_recipe(load_job("demo", ["stages.sample.num_frames=4"]))
    assert first_difference(recipe, other) == "stages.sample.options.num_frames: 8 -> 4"
