"""Strict loading of VinVL's published file layout, on a full-size seeded random X152-C4
(generated here, never committed): both wrappers, ``module.`` prefixes, refusals in one
line, no unpickling of code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from vinvl_tiny import TINY

from vlprep.errors import CheckpointError
from vlprep.models.vinvl import VinVL
from vlprep.models.vinvl_checkpoint import (
    BOX_EXTRACTOR,
    SHARED,
    random_state,
    save_published,
)


@pytest.fixture(scope="session")
def x152_state() -> dict[str, torch.Tensor]:
    return random_state(seed=11)


@pytest.fixture(scope="session")
def x152_file(x152_state, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_published(x152_state, tmp_path_factory.mktemp("x152") / "vinvl_vg_x152c4.pth")


def same_weights(det: VinVL, state: dict[str, torch.Tensor]) -> None:
    own = det.net.state_dict()
    assert own.keys() == state.keys()
    for key in ("backbone.body.stem.conv1.weight", "backbone.body.layer3.35.bn3.running_var",
                "rpn.head.conv.weight", "rpn.anchor_generator.cell_anchors.0",
                "roi_heads.box.feature_extractor.head.layer4.2.conv3.weight",
                "roi_heads.box.predictor.cls_score.weight",
                "attribute.predictor.attr_score.weight"):
        assert torch.equal(own[key], state[key]), key


def test_full_size_layout_and_strict_load(x152_state, x152_file):
    assert len([k for k in x152_state if k.startswith("backbone.body.layer3.")]) == 36 * 15 + 5
    assert x152_state["roi_heads.box.predictor.cls_score.weight"].shape == (1595, 2048)
    assert x152_state["attribute.predictor.attr_score.weight"].shape == (525, 512)
    assert x152_state["attribute.predictor.fc_attr.weight"].shape == (512, 2048 + 256)
    assert x152_state["backbone.body.layer1.0.conv2.weight"].shape == (256, 8, 3, 3)
    raw = torch.load(x152_file, weights_only=True)
    assert set(raw) == {"model", "iteration"} and set(raw["model"]) == set(x152_state)
    det = VinVL.from_checkpoint(x152_file)
    det.eval()
    same_weights(det, x152_state)


def test_bare_state_dict_with_module_prefix(x152_state, tmp_path):
    path = save_published(x152_state, tmp_path / "bare.pth", wrapped=False, prefix="module.")
    same_weights(VinVL.from_checkpoint(path), x152_state)


def test_truncated_file_is_refused_in_one_line(x152_file, tmp_path):
    cut = tmp_path / "cut.pth"
    with open(x152_file, "rb") as src:
        cut.write_bytes(src.read(50_000_000))
    with pytest.raises(CheckpointError) as info:
        VinVL.from_checkpoint(cut)
    assert "not a loadable state dict" in str(info.value) and "\n" not in str(info.value)


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return random_state(TINY, seed=1)


def refusal(state: dict, tmp_path: Path, config=TINY, **kw) -> str:
    path = save_published(state, tmp_path / "x.pth", **kw)
    with pytest.raises(CheckpointError) as info:
        VinVL.from_checkpoint(path, config=config)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_wrong_layouts_are_refused_naming_the_key(tiny_state, tmp_path):
    missing = {k: v for k, v in tiny_state.items() if k != "rpn.head.bbox_pred.bias"}
    assert "missing key rpn.head.bbox_pred.bias" in refusal(missing, tmp_path)
    extra = {**tiny_state, "roi_heads.mask.predictor.weight": torch.zeros(1)}
    assert "unexpected key roi_heads.mask.predictor.weight" in refusal(extra, tmp_path)
    shape = {**tiny_state, "roi_heads.box.predictor.cls_score.weight": torch.zeros(3, 128)}
    assert "cls_score.weight has shape (3, 128)" in refusal(shape, tmp_path)
    torchvision_like = {"backbone.body.conv1.weight": torch.zeros(1),
                        "roi_heads.box_predictor.cls_score.weight": torch.zeros(1)}
    assert "missing key backbone.body.stem.conv1.weight" in refusal(torchvision_like, tmp_path)
    assert "missing key" in refusal(tiny_state, tmp_path, config=TINY.__class__(
        **{**TINY.__dict__, "blocks": (1, 2, 2)}))  # a truncated stack is not inferred away
    other = {**tiny_state}
    key = next(k for k in other if k.startswith(SHARED))
    other[key] = other[key] + 1
    assert "differs from" in refusal(other, tmp_path)


def test_file_without_the_shared_copy_loads(tiny_state, tmp_path):
    lean = {k: v for k, v in tiny_state.items() if not k.startswith(SHARED)}
    path = save_published(lean, tmp_path / "lean.pth")
    det = VinVL.from_checkpoint(path, config=TINY)
    key = "head.layer4.0.conv1.weight"
    assert torch.equal(det.net.state_dict()[SHARED + key], tiny_state[BOX_EXTRACTOR + key])


class Exploit:
    def __reduce__(self):
        return (Path.write_text, (Path("/tmp/vinvl-unpickled-code"), "ran"))


def test_loading_never_unpickles_code(tmp_path):
    marker = Path("/tmp/vinvl-unpickled-code")
    marker.unlink(missing_ok=True)
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": Exploit()}, f)
    with pytest.raises(CheckpointError, match="not a loadable state dict"):
        VinVL.from_checkpoint(path)
    assert not marker.exists()
    torch.save({"model": {"x": torch.zeros(1)}, "note": "fine"}, path)
    with pytest.raises(CheckpointError, match="missing key"):
        VinVL.from_checkpoint(path, config=TINY)


def test_sha256_pin(tiny_state, tmp_path):
    import hashlib

    path = save_published(tiny_state, tmp_path / "t.pth")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    VinVL.from_checkpoint(path, config=TINY, sha256=digest)
    with pytest.raises(CheckpointError, match="sha256"):
        VinVL.from_checkpoint(path, config=TINY, sha256="0" * 64)
    with pytest.raises(CheckpointError, match="no such file"):
        VinVL.from_checkpoint(tmp_path / "none.pth")


def real_frame(height: int | None = None):
    import av
    from media import sample_videos

    with av.open(str(sample_videos()["bigbuckbunny"])) as container:
        frame = next(container.decode(video=0)).to_ndarray(format="rgb24")
    return frame if height is None else frame[:height]


@pytest.mark.slow
def test_full_size_forward_on_real_frames(x152_file):
    import numpy as np

    det = VinVL.from_checkpoint(x152_file)
    det.eval()
    frames = [real_frame(), real_frame(200)]
    out = det.detect(frames)
    for frame, o in zip(frames, out, strict=True):
        n = len(o["scores"])
        assert 10 <= n <= 100
        assert o["features"].shape == (n, 2048) and o["features"].dtype == np.float32
        assert o["attr_labels"].shape == (n, 16) and o["attr_scores"].shape == (n, 16)
        assert ((o["labels"] >= 1) & (o["labels"] <= 1594)).all()
        assert (o["boxes"][:, 2] <= frame.shape[1]).all() and (o["boxes"] >= 0).all()
        assert np.isfinite(o["features"]).all()
    again = det.detect(frames[:1])[0]
    np.testing.assert_array_equal(again["labels"], out[0]["labels"])
    np.testing.assert_allclose(again["features"], out[0]["features"], rtol=1e-4, atol=1e-4)
