from __future__ import annotations

import json
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY_DETECTOR

from vlprep.models.detector import (
    CheckpointError,
    label_names,
    load_detector,
    random_detector,
    read_label_map,
    region_feature_dim,
)
from vlprep.models.onnx_runtime import onnxruntime_available
from vlprep.models.region_detector import (
    RegionDetector,
    VinvlSettings,
    box_geometry,
    detect,
    vinvl_filter,
)

SIZES = {k: v for k, v in TINY_DETECTOR.items() if k != "architecture"}


def frames(n: int, size: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def detector(tiny_detector_checkpoint) -> RegionDetector:
    return RegionDetector(load_detector(tiny_detector_checkpoint, "resnet18_fpn", **SIZES))


def test_state_dict_loads_into_the_named_architecture(tiny_detector_checkpoint):
    model = load_detector(tiny_detector_checkpoint, "resnet18_fpn", **SIZES)
    reference = random_detector(0, num_classes=6, **TINY_DETECTOR)
    ref = reference.state_dict()
    assert not model.training
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
    assert model.roi_heads.box_predictor.cls_score.out_features == 6  # read from the file
    assert model.transform.min_size == (64,) and model.rpn._post_nms_top_n["testing"] == 20
    assert region_feature_dim(model, "head") == 1024 and region_feature_dim(model, "roi") == 256


@pytest.mark.parametrize("problem", ["architecture", "missing", "shape", "not_detector"])
def test_wrong_checkpoints_are_refused(tmp_path, tiny_detector_checkpoint, problem):
    state = torch.load(tiny_detector_checkpoint, weights_only=True)
    architecture = "resnet18_fpn"
    if problem == "architecture":
        architecture, expect = "mobilenet_v3_large_fpn", "not a mobilenet_v3_large_fpn"
    elif problem == "missing":
        state.pop("rpn.head.conv.0.0.weight")
        expect = "1 missing keys"
    elif problem == "shape":
        state["roi_heads.box_head.fc7.weight"] = torch.zeros(1024, 10)
        expect = "fc7.weight has shape"
    else:
        state = {"fc.weight": torch.zeros(2, 2)}
        expect = "not a torchvision Faster R-CNN"
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=expect):
        load_detector(path, architecture, **SIZES)


def test_wrapped_and_safetensors_checkpoints(tmp_path, tiny_detector_checkpoint):
    from safetensors.torch import save_file

    state = torch.load(tiny_detector_checkpoint, weights_only=True)
    torch.save({"model": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "w.pth")
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "d.safetensors"))
    for path in (tmp_path / "w.pth", tmp_path / "d.safetensors"):
        model = load_detector(path, "resnet18_fpn", **SIZES)
        assert torch.equal(model.roi_heads.box_predictor.bbox_pred.weight,
                           state["roi_heads.box_predictor.bbox_pred.weight"])


class _Payload:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_loading_never_unpickles_code(tmp_path):
    marker = tmp_path / "code-ran"
    with open(tmp_path / "evil.pth", "wb") as f:
        pickle.dump({"roi_heads.box_predictor.cls_score.weight": _Payload(marker)}, f)
    with pytest.raises(CheckpointError, match="not a loadable state dict"):
        load_detector(tmp_path / "evil.pth", "resnet18_fpn")
    assert not marker.exists()


def test_label_maps(tmp_path, tiny_label_map):
    assert read_label_map(str(tiny_label_map)) == [
        "__background__", "man", "dog", "ball", "tree", "car"]
    coco = read_label_map("coco")
    assert len(coco) == 91 and coco[:2] == ["__background__", "person"]
    # COCO repeats "N/A"; readers map names back to ids, so every name is unique
    assert len(set(coco)) == 91 and (coco[12], coco[26], coco[29]) == ("N/A", "N/A_26", "N/A_29")
    (tmp_path / "dup.txt").write_text("man\ndog\nman\nman_3\n")
    assert read_label_map(str(tmp_path / "dup.txt")) == [
        "__background__", "man", "dog", "man_3", "man_3_4"]
    (tmp_path / "l.txt").write_text("man\ndog\n")
    (tmp_path / "l.json").write_text(json.dumps(["__background__", "man", "dog"]))
    assert read_label_map(str(tmp_path / "l.txt")) == read_label_map(str(tmp_path / "l.json"))
    assert label_names(None, 3) == ["__background__", "class_1", "class_2"]
    with pytest.raises(ValueError, match="has 6 entries .* but the detector has 1595"):
        label_names(str(tiny_label_map), 1595)
    (tmp_path / "gap.json").write_text(json.dumps({"idx_to_label": {"1": "a", "3": "b"}}))
    with pytest.raises(ValueError, match="not contiguous"):
        read_label_map(str(tmp_path / "gap.json"))


def test_vinvl_filter_rules():
    """Per-class NMS, one label per proposal, threshold with a minimum and a maximum."""
    s = VinvlSettings(score_thresh=0.5, nms_thresh=0.5, min_detections=2, max_detections=3)
    box = torch.tensor([0.0, 0.0, 10.0, 10.0])
    far = torch.tensor([50.0, 50.0, 60.0, 60.0])
    # 5 proposals x 3 classes (0 = background); boxes per class identical to the proposal's
    probs = torch.tensor([
        [0.1, 0.8, 0.1],   # p0: class 1, 0.8
        [0.1, 0.7, 0.2],   # p1: same box as p0 -> class 1 suppressed; class 2 survives (0.2)
        [0.3, 0.1, 0.6],   # p2: far away, class 2, 0.6
        [0.6, 0.3, 0.1],   # p3: far from everything but low scores
        [0.5, 0.45, 0.05],  # p4
    ])
    boxes = torch.stack([box, box, far, far + 100, far + 200])[:, None, :].repeat(1, 3, 1)
    image = torch.tensor([0, 0, 0, 0, 1])
    out_boxes, labels, scores, image_of = vinvl_filter(probs, boxes, image, 2, s)
    got = list(zip(image_of.tolist(), labels.tolist(), [round(x, 2) for x in scores.tolist()],
                   strict=True))
    # image 0: p0 (1, .8), p2 (2, .6) pass the threshold; p3 tops up? no: 2 >= min already;
    # p1 keeps only class 2 (0.2), below threshold; image 1: p4 class 1 (0.45) tops up to 1
    assert got == [(0, 1, 0.8), (0, 2, 0.6), (1, 1, 0.45)]
    assert torch.equal(out_boxes[0], box) and torch.equal(out_boxes[1], far)
    s_min = VinvlSettings(score_thresh=0.9, min_detections=3, max_detections=3)
    _, _, scores, image_of = vinvl_filter(probs, boxes, image, 2, s_min)
    assert image_of.tolist() == [0, 0, 0, 1]  # 3 best of image 0 although all < 0.9
    assert scores.tolist() == sorted(scores[:3].tolist(), reverse=True) + scores[3:].tolist()


def test_region_detector_outputs(detector):
    x = frames(3)
    dets = detect(detector, x, batch_size=2)
    assert len(dets) == 3
    for d in dets:
        k = len(d.scores)
        assert 10 <= k <= 100  # random weights score < 0.2: the minimum of 10 applies
        assert d.boxes.shape == (k, 4) and d.boxes.dtype == np.float32
        assert d.features.shape == (k, 1024) and d.labels.dtype == np.int64
        assert np.all(np.diff(d.scores) <= 0) and np.all((d.labels >= 1) & (d.labels < 6))
        assert d.boxes.min() >= 0 and d.boxes.max() <= 64 and (d.width, d.height) == (64, 64)
        assert np.all(d.boxes[:, 2] >= d.boxes[:, 0]) and np.all(d.boxes[:, 3] >= d.boxes[:, 1])
    again = detect(detector, x, batch_size=3)
    for a, b in zip(dets, again, strict=True):  # deterministic, and batching changes nothing
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-3)
        np.testing.assert_allclose(a.features, b.features, atol=1e-4)


def test_boxes_are_in_the_input_frame_coordinates(tiny_detector_checkpoint):
    """The model resizes 96-px frames to 64 inside; boxes come back in 96-px coordinates."""
    model = load_detector(tiny_detector_checkpoint, "resnet18_fpn", **SIZES)
    roi = RegionDetector(model, VinvlSettings(region_feature="roi"))
    d = detect(roi, frames(1, size=96))[0]
    assert d.features.shape[1] == 256 and d.boxes.max() > 64 and d.boxes.max() <= 96


def test_box_geometry():
    g = box_geometry(np.array([[10, 20, 30, 60]], np.float32), width=100, height=200)
    np.testing.assert_allclose(g, [[0.1, 0.1, 0.3, 0.3, 0.2, 0.2]])
    assert box_geometry(np.zeros((0, 4)), 10, 10).shape == (0, 6)


@pytest.mark.skipif(not onnxruntime_available(), reason="needs onnxruntime")
def test_onnx_export_matches_torch(tmp_path, detector):
    from vlprep.models.onnx_runtime import OnnxSession
    from vlprep.models.region_detector import export_detector_onnx, onnx_detect

    path = export_detector_onnx(detector, tmp_path / "det.onnx", batch=2, height=64, width=64)
    session = OnnxSession(path)
    assert session.metadata["num_classes"] == 6 and session.metadata["feature_dim"] == 1024
    x = frames(3, seed=5)  # 2 batches, the last one padded
    ours, theirs = detect(detector, x), onnx_detect(session, x)
    for a, b in zip(ours, theirs, strict=True):
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_allclose(a.boxes, b.boxes, atol=1e-2)  # pixels
        np.testing.assert_allclose(a.scores, b.scores, atol=1e-5)
        np.testing.assert_allclose(a.features, b.features, atol=1e-3)
    with pytest.raises(ValueError, match="exported for 64x64"):
        onnx_detect(session, frames(1, size=32))


def test_bf16_autocast_path_runs_on_cpu(detector):
    """The GPU precision path (autocast), exercised with CPU bf16: float32 outputs."""
    d = detect(detector, frames(2), precision="bf16")
    assert all(x.features.dtype == np.float32 and x.boxes.dtype == np.float32 for x in d)
    assert all(10 <= len(x.scores) <= 100 and np.all(np.diff(x.scores) <= 0) for x in d)
