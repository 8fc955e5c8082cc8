from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from conftest import TINY_DETECTOR
from pydantic import ValidationError

from vlprep.models.detector import load_detector
from vlprep.models.onnx_runtime import onnxruntime_available
from vlprep.models.region_detector import RegionDetector, detect
from vlprep.schemas import REGIONS, with_vector_dims
from vlprep.stages.base import OUTPUTS, Resources
from vlprep.stages.detect import DetectedFrames, DetectOptions, DetectStage
from vlprep.stages.frames import SampledFrames

SIZES = {k: v for k, v in TINY_DETECTOR.items() if k != "architecture"}


def record_with_frames(video_id: str, n: int, seed: int, size: int = 64) -> dict:
    rng = np.random.default_rng(seed)
    return {"video_id": video_id, "path": f"/{video_id}.mp4", "partition": 0,
            "stoa_frames": SampledFrames(
                frames=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                indices=np.arange(n, dtype=np.int64) * 7, times=np.arange(n, dtype=np.float32))}


def options(checkpoint, label_map, **extra) -> DetectOptions:
    return DetectOptions(checkpoint=str(checkpoint), label_map=str(label_map),
                         frames="stoa_frames", device="cpu", **TINY_DETECTOR, **extra)


def test_options_validation(tmp_path, tiny_detector_checkpoint, tiny_label_map):
    with pytest.raises(ValidationError, match="checkpoint is required"):
        DetectOptions()
    with pytest.raises(ValidationError, match="is not a file"):
        DetectOptions(checkpoint=str(tmp_path))
    with pytest.raises(ValidationError, match="num_classes applies to init: random only"):
        DetectOptions(checkpoint=str(tiny_detector_checkpoint), num_classes=3)
    with pytest.raises(ValidationError, match="label_map"):
        DetectOptions(init="random", label_map=str(tmp_path / "none.json"))
    with pytest.raises(ValidationError, match="needs runtime: onnx"):
        onnx = tmp_path / "d.onnx"
        onnx.write_bytes(b"x")
        DetectOptions(checkpoint=str(onnx))
    with pytest.raises(ValidationError, match="min_detections cannot exceed"):
        DetectOptions(init="random", min_detections=5, max_detections=4)
    opts = DetectOptions(init="random")
    assert (opts.architecture, opts.score_thresh, opts.nms_thresh, opts.min_detections,
            opts.max_detections, opts.min_size, opts.max_size) == (
        "resnet50_fpn_v2", 0.2, 0.5, 10, 100, 600, 1000)


def test_regions_rows_and_detections_on_the_record(tiny_detector_checkpoint, tiny_label_map):
    stage = DetectStage(options(tiny_detector_checkpoint, tiny_label_map, frame_batch=3),
                        Resources())
    batch = [record_with_frames("a", 4, 0), record_with_frames("b", 2, 1)]
    stage(batch)
    model = RegionDetector(load_detector(tiny_detector_checkpoint, "resnet18_fpn", **SIZES))
    schema = with_vector_dims(REGIONS, features=1024)
    names = ["__background__", "man", "dog", "ball", "tree", "car"]
    for record in batch:
        frames = record["stoa_frames"]
        table = record[OUTPUTS]["regions"]
        assert table.schema.equals(schema, check_metadata=True)
        assert table.num_rows == len(frames)
        rows = table.to_pylist()
        alone = detect(model, frames.frames)  # batching across videos changes nothing
        for rank, (row, want) in enumerate(zip(rows, alone, strict=True)):
            assert (row["frame_index"], row["sample_rank"]) == (frames.indices[rank], rank)
            assert (row["width"], row["height"]) == (64, 64)
            assert row["classes"] == want.labels.tolist()
            assert row["class_names"] == [names[i] for i in want.labels]
            np.testing.assert_allclose(row["boxes"], want.boxes, atol=1e-3)
            np.testing.assert_allclose(row["scores"], want.scores, atol=1e-6)
            np.testing.assert_allclose(row["features"], want.features, rtol=2e-3, atol=1e-3)
            geometry = np.array(row["geometry"])
            np.testing.assert_allclose(geometry[:, :4], np.array(row["boxes"]) / 64, atol=1e-6)
            np.testing.assert_allclose(geometry[:, 4], geometry[:, 2] - geometry[:, 0],
                                       atol=1e-6)
        features = table.column("features").type.value_type
        assert features.value_type == pa.float16() and features.list_size == 1024
        dets = record["detections"]
        assert isinstance(dets, DetectedFrames) and len(dets) == len(frames)
        assert dets.names == names and (dets.width, dets.height) == (64, 64)
        np.testing.assert_array_equal(dets.labels[0], np.array(rows[0]["classes"]))


def test_random_init_with_coco_names_and_roi_features():
    opts = DetectOptions(init="random", label_map="coco", frames="stoa_frames",
                         region_feature="roi", min_detections=3, **TINY_DETECTOR)
    record = record_with_frames("a", 2, 0)
    DetectStage(opts, Resources())([record])
    table = record[OUTPUTS]["regions"]
    assert table.schema.field("features").type.value_type.list_size == 256
    row = table.to_pylist()[0]
    assert len(row["classes"]) == 3 and all(1 <= c < 91 for c in row["classes"])
    again = record_with_frames("a", 2, 0)
    DetectStage(opts, Resources())([again])
    assert again[OUTPUTS]["regions"].equals(table)  # the seed fixes the weights


@pytest.mark.slow
@pytest.mark.skipif(not onnxruntime_available(), reason="needs onnxruntime")
def test_onnx_runtime_agrees_with_torch(tiny_detector_checkpoint, tiny_label_map):
    batch = [record_with_frames("a", 3, 0)]
    onnx_batch = [record_with_frames("a", 3, 0)]
    DetectStage(options(tiny_detector_checkpoint, tiny_label_map), Resources())(batch)
    stage = DetectStage(options(tiny_detector_checkpoint, tiny_label_map, runtime="onnx",
                                frame_batch=2), Resources())
    stage(onnx_batch)
    assert stage.model.name == "onnx" and type(stage.model.model).__name__ == "OnnxSession"
    for a, b in zip(batch[0][OUTPUTS]["regions"].to_pylist(),
                    onnx_batch[0][OUTPUTS]["regions"].to_pylist(), strict=True):
        assert a["classes"] == b["classes"]
        np.testing.assert_allclose(a["boxes"], b["boxes"], atol=1e-2)
        np.testing.assert_allclose(a["features"], b["features"], atol=2e-3)
