"""The detect stage with ``architecture: vinvl_x152c4``: options, VinVL's own settings as the
defaults, `regions` rows with attributes (on a tiny configuration of the architecture)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from pydantic import ValidationError
from vinvl_tiny import TINY

from vlprep.models.onnx_runtime import onnxruntime_available
from vlprep.models.vinvl import VinVL
from vlprep.models.vinvl_net import X152C4
from vlprep.stages import detect_vinvl
from vlprep.stages.base import OUTPUTS, Resources
from vlprep.stages.detect import DetectOptions, DetectStage
from vlprep.stages.detect_vinvl import vinvl_config
from vlprep.stages.frames import SampledFrames

VINVL = {"architecture": "vinvl_x152c4"}


@pytest.fixture
def label_map(tmp_path: Path) -> Path:
    path = tmp_path / "VG-SGG-dicts-tiny.json"
    path.write_text(json.dumps({
        "label_to_idx": {f"obj{i}": i for i in range(1, TINY.num_classes)},
        "idx_to_label": {str(i): f"obj{i}" for i in range(1, TINY.num_classes)},
        "attribute_to_idx": {f"attr{i}": i for i in range(1, TINY.num_attributes)}}))
    return path


def test_options(tmp_path, label_map):
    with pytest.raises(ValidationError, match="VG-SGG-dicts JSON"):
        DetectOptions(init="random", label_map="coco", **VINVL)
    with pytest.raises(ValidationError, match="region_feature applies to the torchvision"):
        DetectOptions(init="random", region_feature="roi", **VINVL)
    onnx = tmp_path / "d.onnx"
    onnx.write_bytes(b"x")
    with pytest.raises(ValidationError, match="takes the .pth"):
        DetectOptions(checkpoint=str(onnx), runtime="onnx", **VINVL)
    DetectOptions(init="random", label_map=str(label_map), **VINVL)


def test_vinvl_settings_are_the_defaults_and_jobs_override_them():
    assert vinvl_config(DetectOptions(init="random", **VINVL)) == X152C4
    assert X152C4.class_nms == 0.3 and X152C4.post_nms_top_n == 300
    custom = vinvl_config(DetectOptions(init="random", nms_thresh=0.4, max_detections=50,
                                        proposals=100, **VINVL))
    assert (custom.class_nms, custom.max_detections, custom.post_nms_top_n) == (0.4, 50, 100)
    legacy = vinvl_config(DetectOptions(init="random", nms_convention="legacy", **VINVL))
    assert legacy.nms == "legacy"


def record(video_id: str, n: int, seed: int, size: int = 64) -> dict:
    rng = np.random.default_rng(seed)
    frames = np.kron(rng.integers(0, 256, (n, size // 8, size // 8, 3)),
                     np.ones((1, 8, 8, 1))).astype(np.uint8)
    return {"video_id": video_id, "path": f"/{video_id}.mp4", "partition": 0,
            "stoa_frames": SampledFrames(frames=frames, indices=np.arange(n) * 5,
                                         times=np.arange(n, dtype=np.float32))}


def test_regions_with_attributes(monkeypatch, label_map):
    monkeypatch.setattr(detect_vinvl, "BASE", TINY)
    opts = DetectOptions(init="random", seed=4, label_map=str(label_map), frames="stoa_frames",
                         device="cpu", frame_batch=2, **VINVL)
    batch = [record("a", 3, 0), record("b", 2, 1)]
    DetectStage(opts, Resources())(batch)
    det = VinVL.random(TINY, seed=4)
    for rec in batch:
        table = rec[OUTPUTS]["regions"]
        assert table.schema.field("features").type.value_type.list_size == TINY.feature_dim
        assert table.schema.field("attr_ids").type == pa.list_(pa.list_(pa.int16()))
        want = det.detect(list(rec["stoa_frames"].frames))
        for row, w in zip(table.to_pylist(), want, strict=True):
            assert row["classes"] == w["labels"].tolist()
            assert row["class_names"] == [f"obj{i}" for i in w["labels"]]
            np.testing.assert_allclose(row["boxes"], w["boxes"], atol=2e-3)
            np.testing.assert_allclose(row["features"], w["features"], rtol=2e-3, atol=1e-3)
            for ids, names, scores, wl, ws in zip(row["attr_ids"], row["attr_names"],
                                                  row["attr_scores"], w["attr_labels"],
                                                  w["attr_scores"], strict=True):
                assert ids == wl[ws > 0].tolist() and names == [f"attr{i}" for i in ids]
                np.testing.assert_allclose(scores, ws[ws > 0], rtol=1e-4)
            geometry = np.array(row["geometry"])
            np.testing.assert_allclose(geometry[:, :4], np.array(row["boxes"]) / 64, atol=1e-6)
        assert rec["detections"].names[1] == "obj1"


def test_torchvision_regions_have_null_attributes():
    from conftest import TINY_DETECTOR

    opts = DetectOptions(init="random", frames="stoa_frames", min_detections=2, **TINY_DETECTOR)
    rec = record("a", 1, 0)
    DetectStage(opts, Resources())([rec])
    row = rec[OUTPUTS]["regions"].to_pylist()[0]
    assert row["attr_ids"] is None and row["attr_names"] is None and row["attr_scores"] is None


@pytest.mark.skipif(not onnxruntime_available(), reason="needs onnxruntime")
def test_onnx_runtime_agrees_with_torch(monkeypatch, label_map):
    monkeypatch.setattr(detect_vinvl, "BASE", TINY)
    rows = {}
    for runtime in ("torch", "onnx"):
        opts = DetectOptions(init="random", seed=2, label_map=str(label_map), device="cpu",
                             frames="stoa_frames", runtime=runtime, **VINVL)
        rec = record("a", 2, 5, size=80)
        stage = DetectStage(opts, Resources())
        stage([rec])
        rows[runtime] = rec[OUTPUTS]["regions"].to_pylist()
    assert type(stage.model.model).__name__ == "VinVLOnnx"
    for a, b in zip(rows["torch"], rows["onnx"], strict=True):
        assert a["classes"] == b["classes"] and a["attr_ids"] == b["attr_ids"]
        np.testing.assert_allclose(a["boxes"], b["boxes"], atol=1e-2)
        np.testing.assert_allclose(a["scores"], b["scores"], atol=1e-5)
        np.testing.assert_allclose(a["features"], b["features"], atol=2e-3)


def full_label_map(path: Path) -> Path:
    """VG-SGG-dicts-vgoi6-clipped.json's layout at its size (1,594 classes, 524 attributes)."""
    path.write_text(json.dumps({
        "label_to_idx": {f"class{i}": i for i in range(1, 1595)},
        "idx_to_label": {str(i): f"class{i}" for i in range(1, 1595)},
        "attribute_to_idx": {f"attribute{i}": i for i in range(1, 525)},
        "idx_to_attribute": {str(i): f"attribute{i}" for i in range(1, 525)}}))
    return path


@pytest.mark.slow
def test_stoa_recipe_detect_end_to_end_and_export(tmp_path):
    """The stoa recipe's detect stage with a full-size random X152-C4 in the published layout
    on two frames, into a store's `regions`, exported and read back as VinVL's TSVs."""
    import base64

    from media import pattern_frames

    from vlprep.export.vinvl import export_vinvl
    from vlprep.jobs.config import load_job
    from vlprep.models.vinvl_checkpoint import random_state, save_published
    from vlprep.pipeline.provenance import stage_recipe
    from vlprep.store import Store

    checkpoint = save_published(random_state(seed=5), tmp_path / "vinvl_vg_x152c4.pth")
    labels = full_label_map(tmp_path / "VG-SGG-dicts-vgoi6-clipped.json")
    job = tmp_path / "job.yaml"
    job.write_text(json.dumps({"recipe": "stoa", "manifest": "m.jsonl",
                               "store": str(tmp_path / "store"), "stages": {
                                   "clip": {"init": "random"},
                                   "detect": {"checkpoint": str(checkpoint),
                                              "label_map": str(labels), "device": "cpu"}}}))
    spec = next(s for s in load_job(str(job)).stages if s.name == "detect")
    assert spec.options.architecture == "vinvl_x152c4"
    frames = pattern_frames(2, 224, 224, seed=1)
    rec = {"video_id": "vid", "path": "/vid.mp4", "partition": 0,
           "stoa_frames": SampledFrames(frames=frames, indices=np.array([0, 9]),
                                        times=np.array([0.0, 0.9], np.float32))}
    spec.build()([rec])
    regions = rec[OUTPUTS]["regions"]
    store = Store(str(tmp_path / "store"))
    store.write_partition(0, 1, {"regions": regions}, 1 << 26)
    store.write_atomic(store.path("_recipe.json"),
                       json.dumps({"stages": [stage_recipe(spec)]}).encode())
    export_vinvl(store.uri, str(tmp_path / "out"))
    out = tmp_path / "out"
    offsets = [int(x) for x in (out / "predictions.lineidx").read_text().split()]
    feature_offsets = [int(x) for x in (out / "predictions.feature.lineidx").read_text().split()]
    rows = regions.to_pylist()
    with open(out / "predictions.tsv") as pf, open(out / "predictions.feature.tsv") as ff:
        for pos, fpos, row in zip(offsets, feature_offsets, rows, strict=True):
            pf.seek(pos)
            key, payload = pf.readline().rstrip("\n").split("\t")
            ff.seek(fpos)
            fkey, finfo = ff.readline().rstrip("\n").split("\t")
            assert key == fkey == f"vid_{row['sample_rank']}"
            objects = json.loads(payload)["objects"]
            assert 10 <= len(objects) <= 100 and len(objects) == len(row["scores"])
            assert all(o["class"].startswith("class") for o in objects)
            assert [o["attributes"] for o in objects] == row["attr_names"]
            for o in objects:
                assert np.frombuffer(base64.b64decode(o["feature"]), np.float32).shape == (2048,)
            info = json.loads(finfo)
            block = np.frombuffer(base64.b64decode(info["features"]), np.float32)
            assert block.reshape(info["num_boxes"], -1).shape == (len(objects), 2048 + 6)
    label_map = json.loads((out / "labelmap.json").read_text())
    assert len(label_map["label_to_idx"]) == 1594 and len(label_map["attribute_to_idx"]) == 524
