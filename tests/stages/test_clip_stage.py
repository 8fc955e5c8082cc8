from __future__ import annotations

import numpy as np
import pytest
from media import sample_videos
from pydantic import ValidationError

from vlprep.models.clip import embed_frames, load_clip
from vlprep.schemas import CLIP_FRAMES, with_vector_dims
from vlprep.stages.base import OUTPUTS, Resources, VideoError
from vlprep.stages.clip import ClipOptions, ClipStage
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
    schema = with_vector_dims(CLIP_FRAMES, embedding=16)
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
