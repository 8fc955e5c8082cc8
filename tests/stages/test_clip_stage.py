from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from media import sample_videos
from pydantic import ValidationError

from vlprep.models.clip import embed_frames, load_clip
from vlprep.models.onnx_runtime import onnxruntime_available
from vlprep.stages.base import OUTPUTS, Resources, VideoError
from vlprep.stages.clip import ClipOptions, ClipStage, clip_frames_schema
from vlprep.stages.frames import SampledFrames
from vlprep.stages.probe import ProbeOptions, ProbeStage
from vlprep.stages.sample import SampleOptions, SampleStage


def record_with_frames(video_id: str, n: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    return {"video_id": video_id, "path": f"/{video_id}.mp4", "partition": 0,
            "frames": SampledFrames(
                frames=rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8),
                indices=np.arange(n, dtype=np.int64) * 10 + 3,
                times=(np.arange(n, dtype=np.float32) * 10 + 3) / 25)}


def test_options_validation(tiny_clip_dir, tmp_path):
    with pytest.raises(ValidationError, match="checkpoint is required"):
        ClipOptions()
    with pytest.raises(ValidationError, match="is not a directory"):
        ClipOptions(checkpoint=str(tmp_path / "nowhere"))
    with pytest.raises(ValidationError, match="not both"):
        ClipOptions(checkpoint=str(tiny_clip_dir), init="random")
    with pytest.raises(ValidationError, match="init: random only"):
        ClipOptions.model_validate({"checkpoint": str(tiny_clip_dir), "model_config": {}})
    with pytest.raises(ValidationError, match="extra"):
        ClipOptions.model_validate({"init": "random", "chekpoint": "x"})
    with pytest.raises(ValidationError, match="cuda"):
        ClipOptions(init="random", device="gpu")
    opts = ClipOptions.model_validate({"init": "random", "seed": 3,
                                       "model_config": {"hidden_size": 32}})
    assert opts.vision_config == {"hidden_size": 32} and opts.frame_batch == 64


def test_rows_per_video_schema_and_embeddings(tiny_clip_dir):
    stage = ClipStage(ClipOptions(checkpoint=str(tiny_clip_dir), device="cpu", frame_batch=3),
                      Resources())
    stage.setup()
    batch = [record_with_frames("a", 8, 0), record_with_frames("b", 5, 1)]
    stage(batch)
    model = load_clip(tiny_clip_dir)
    schema = clip_frames_schema(16, 32)
    for record in batch:
        table = record[OUTPUTS]["clip_frames"]
        n = len(record["frames"].frames)
        assert table.schema.equals(schema, check_metadata=True) and table.num_rows == n
        cols = table.to_pydict()
        assert cols["video_id"] == [record["video_id"]] * n
        assert cols["frame_index"] == record["frames"].indices.tolist()
        np.testing.assert_allclose(cols["time"], record["frames"].times)
        assert cols["sample_rank"] == list(range(n))
        emb = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(n, 16)
        assert emb.dtype == np.float16
        np.testing.assert_allclose(np.linalg.norm(emb.astype(np.float32), axis=1), 1, atol=2e-3)
        # batching across videos and chunking by frame_batch change nothing
        alone = embed_frames(model, record["frames"].frames)
        np.testing.assert_allclose(emb.astype(np.float32), alone, atol=2e-3)


def test_record_without_frames_is_a_video_error(tiny_clip_dir):
    stage = ClipStage(ClipOptions(checkpoint=str(tiny_clip_dir)), Resources())
    with pytest.raises(VideoError, match="no sampled frames"):
        stage([{"video_id": "x", "path": "/x.mp4", "partition": 0}])


def test_probe_sample_clip_on_a_real_video(tiny_clip_config):
    """The demo's chain on one real clip, with a tiny random CLIP (init: random)."""
    path = sample_videos()["carphone_pristine"]
    record = {"video_id": "carphone", "path": str(path), "partition": 0}
    ProbeStage(ProbeOptions(), Resources())([record])
    SampleStage(SampleOptions(num_frames=8), Resources())([record])
    options = ClipOptions.model_validate({"init": "random", "seed": 0,
                                          "model_config": tiny_clip_config})
    ClipStage(options, Resources())([record])
    table = record[OUTPUTS]["clip_frames"]
    assert table.num_rows == 8
    assert table.column("frame_index").to_pylist() == record["frames"].indices.tolist()
    assert set(record[OUTPUTS]) == {"videos", "clip_frames"}


def test_patch_tokens_grid_and_full(tiny_clip_dir):
    from vlprep.models.clip import ClipFeatures, clip_features

    record = record_with_frames("a", 3, 0)
    model = load_clip(tiny_clip_dir)
    for mode, grid in (("grid", 7), ("full", 14)):
        opts = ClipOptions(checkpoint=str(tiny_clip_dir), patch_tokens=mode, device="cpu")
        record.pop("_outputs", None)
        ClipStage(opts, Resources())([record])
        table = record[OUTPUTS]["clip_frames"]
        assert table.schema.equals(clip_frames_schema(16, 32), check_metadata=True)
        tokens = table.column("patch_tokens").type.value_type
        assert tokens.value_type == pa.float16() and tokens.list_size == 32
        rows = table.to_pylist()
        assert [r["patch_grid"] for r in rows] == [grid] * 3
        want = clip_features(ClipFeatures(model, -1, 7 if mode == "grid" else None),
                             record["frames"].frames)[1]
        np.testing.assert_allclose(np.array([r["patch_tokens"] for r in rows]), want,
                                   rtol=2e-3, atol=2e-3)
    record.pop("_outputs")
    ClipStage(ClipOptions(checkpoint=str(tiny_clip_dir)), Resources())([record])
    rows = record[OUTPUTS]["clip_frames"].to_pylist()
    assert all(r["patch_grid"] is None and r["patch_tokens"] is None for r in rows)


@pytest.mark.skipif(not onnxruntime_available(), reason="needs onnxruntime")
def test_onnx_runtime_agrees_with_torch_and_reads_an_onnx_checkpoint(tiny_clip_dir, tmp_path):
    from vlprep.models.clip import ClipFeatures, export_clip_onnx

    batch = [record_with_frames("a", 3, 0), record_with_frames("b", 2, 1)]
    onnx_batch = [record_with_frames("a", 3, 0), record_with_frames("b", 2, 1)]
    common = dict(checkpoint=str(tiny_clip_dir), patch_tokens="grid", patch_grid=2)
    ClipStage(ClipOptions(**common), Resources())(batch)
    ClipStage(ClipOptions(**common, runtime="onnx"), Resources())(onnx_batch)
    path = export_clip_onnx(ClipFeatures(load_clip(tiny_clip_dir), -1, 2), tmp_path / "c.onnx")
    from_file = [record_with_frames("a", 3, 0)]
    ClipStage(ClipOptions(checkpoint=str(path), runtime="onnx", patch_tokens="grid",
                          patch_grid=2), Resources())(from_file)
    for a, b in zip(batch, onnx_batch, strict=True):
        ta, tb = a[OUTPUTS]["clip_frames"], b[OUTPUTS]["clip_frames"]
        assert ta.schema.equals(tb.schema)
        for column in ("embedding", "patch_tokens"):
            np.testing.assert_allclose(np.array(ta.column(column).to_pylist()),
                                       np.array(tb.column(column).to_pylist()), atol=2e-3)
    assert from_file[0][OUTPUTS]["clip_frames"].equals(onnx_batch[0][OUTPUTS]["clip_frames"])
    with pytest.raises(ValueError, match="exported with patch_block=1, patch_grid=2"):
        ClipStage(ClipOptions(checkpoint=str(path), runtime="onnx"), Resources()).setup()
    with pytest.raises(ValidationError, match="needs runtime: onnx"):
        ClipOptions(checkpoint=str(path))
