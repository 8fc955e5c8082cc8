from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError

from vlprep.columns import s3d_sharded
from vlprep.models.s3d import S3D as S3dModel
from vlprep.models.s3d import embed_windows
from vlprep.schemas import S3D
from vlprep.stages.base import OUTPUTS, Resources, VideoError
from vlprep.stages.frames import SampledFrames
from vlprep.stages.s3d import S3dOptions, S3dStage

WINDOW = 4  # 4-frame windows of 16x16 frames keep the full S3D-G fast on CPU


def videoclip_record(video_id: str, seconds: int, seed: int, key: str = "s3d_frames") -> dict:
    """What the videoclip sampler leaves: seconds x window frames, their window starts."""
    rng = np.random.default_rng(seed)
    n = seconds * WINDOW
    return {"video_id": video_id, "path": f"/{video_id}.mp4", "partition": 0,
            key: SampledFrames(
                frames=rng.integers(0, 256, (n, 16, 16, 3), dtype=np.uint8),
                indices=np.arange(n, dtype=np.int64), times=np.arange(n, dtype=np.float32) / 4,
                sampler="videoclip", window_starts=np.arange(seconds, dtype=np.float32))}


def stage(checkpoint, **options) -> S3dStage:
    opts = S3dOptions(checkpoint=str(checkpoint), window=WINDOW, fps=4, frames="s3d_frames",
                      device="cpu", **options)
    return S3dStage(opts, Resources())


def test_options_validation(tmp_path, tiny_s3d_checkpoint):
    with pytest.raises(ValidationError, match="checkpoint is required"):
        S3dOptions()
    with pytest.raises(ValidationError, match="is not a file"):
        S3dOptions(checkpoint=str(tmp_path))
    with pytest.raises(ValidationError, match="not both"):
        S3dOptions(checkpoint=str(tiny_s3d_checkpoint), init="random")
    with pytest.raises(ValidationError, match="even"):
        S3dOptions(init="random", window=5)
    with pytest.raises(ValidationError, match="extra"):
        S3dOptions.model_validate({"init": "random", "windows": 3})
    opts = S3dOptions(init="random")
    assert (opts.window, opts.fps, opts.normalize, opts.mixed_5c) == (30, 30.0, True, False)


def test_one_row_per_video_with_per_second_features(tiny_s3d_checkpoint):
    s = stage(tiny_s3d_checkpoint, frame_batch=2, mixed_5c=True)
    batch = [videoclip_record("a", 3, 0), videoclip_record("b", 2, 1)]
    s(batch)
    model = S3dModel.from_checkpoint(tiny_s3d_checkpoint)
    for record, seconds in zip(batch, (3, 2), strict=True):
        table = record[OUTPUTS]["s3d"]
        assert table.schema.equals(S3D, check_metadata=True) and table.num_rows == 1
        row = table.to_pylist()[0]
        assert row["video_id"] == record["video_id"] and row["num_windows"] == seconds
        assert row["window_start"] == list(range(seconds))
        assert row["window_end"] == [t + 1.0 for t in range(seconds)]  # 4 frames at 4 fps
        features = np.array(row["features"], np.float32)
        assert features.shape == (seconds, 512)
        assert table.column("features").type.value_type.value_type == pa.float16()
        np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, atol=2e-3)
        alone = embed_windows(model, record["s3d_frames"].frames, window=WINDOW)
        want = alone["video_embedding"] / np.linalg.norm(alone["video_embedding"], axis=1,
                                                         keepdims=True)
        np.testing.assert_allclose(features, want, atol=2e-3)  # batching changes nothing
        np.testing.assert_allclose(np.array(row["mixed_5c"]), alone["mixed_5c"],
                                   rtol=2e-3, atol=1e-3)


def test_unnormalised_and_without_mixed_5c(tiny_s3d_checkpoint):
    record = videoclip_record("a", 2, 0)
    stage(tiny_s3d_checkpoint, normalize=False)([record])
    row = record[OUTPUTS]["s3d"].to_pylist()[0]
    assert row["mixed_5c"] is None
    raw = embed_windows(S3dModel.from_checkpoint(tiny_s3d_checkpoint),
                        record["s3d_frames"].frames, window=WINDOW)["video_embedding"]
    np.testing.assert_allclose(np.array(row["features"]), raw, rtol=2e-3, atol=1e-4)


def test_sharded_layout_is_videoclips(tiny_s3d_checkpoint):
    """Concatenated rows read as VideoCLIP's ShardedTensor: data[starts[i]:starts[i+1]]."""
    batch = [videoclip_record(v, n, i) for i, (v, n) in enumerate([("a", 2), ("b", 3)])]
    stage(tiny_s3d_checkpoint)(batch)
    table = pa.concat_tables([r[OUTPUTS]["s3d"] for r in batch])
    data, starts = s3d_sharded(table.slice(0))
    assert data.shape == (5, 512) and data.dtype == np.float16
    assert starts.tolist() == [0, 2, 5]
    for i, record in enumerate(batch):
        np.testing.assert_array_equal(data[starts[i]:starts[i + 1]],
                                      np.array(record[OUTPUTS]["s3d"].to_pylist()[0]["features"],
                                               np.float16))
    data, starts = s3d_sharded(table.slice(1))  # a slice keeps its own offsets right
    assert data.shape == (3, 512) and starts.tolist() == [0, 3]


def test_frames_that_are_not_whole_windows_are_a_video_error(tiny_s3d_checkpoint):
    record = videoclip_record("a", 2, 0)
    record["s3d_frames"].frames = record["s3d_frames"].frames[:-1]
    with pytest.raises(VideoError, match="not a whole number of 4-frame windows"):
        stage(tiny_s3d_checkpoint)([record])
    with pytest.raises(VideoError, match="no sampled frames under 's3d_frames'"):
        stage(tiny_s3d_checkpoint)([{"video_id": "x", "partition": 0}])


def test_random_init_is_deterministic():
    opts = S3dOptions(init="random", seed=1, window=WINDOW, fps=4, frames="s3d_frames")
    a, b = videoclip_record("a", 1, 0), videoclip_record("a", 1, 0)
    S3dStage(opts, Resources())([a])
    S3dStage(opts, Resources())([b])
    assert a[OUTPUTS]["s3d"].equals(b[OUTPUTS]["s3d"])


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_videoclip_recipe_rows_are_unit_norm(tmp_path, precision):
    """The recipe stores what MMPT's extractor saves (--l2_normalize 1): unit rows, normalised
    in fp32 before the fp16 cast, also when the backbone runs under autocast."""
    import yaml

    from vlprep.jobs.config import load_job

    job_file = tmp_path / "job.yaml"
    job_file.write_text(yaml.safe_dump({"manifest": "m", "store": "s", "recipe": "videoclip-s3d"}))
    job = load_job(str(job_file), ["stages.s3d.init=random", f"stages.s3d.precision={precision}",
                                   f"stages.s3d.window={WINDOW}", "stages.s3d.fps=4",
                                   "stages.s3d.device=cpu"])
    spec = next(s for s in job.stages if s.name == "s3d")
    assert spec.options.normalize is True
    record = videoclip_record("a", 3, 0)
    S3dStage(spec.options, Resources())([record])
    row = record[OUTPUTS]["s3d"].to_pylist()[0]
    features = np.array(row["features"], np.float16).astype(np.float64)
    np.testing.assert_allclose(np.linalg.norm(features, axis=1), 1, atol=1e-3)
