from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from vlprep.models.s3d import (
    S3D,
    CheckpointError,
    _max_pool_same,
    embed_windows,
    random_s3d,
    space_to_depth,
)

# Facts of the published s3d_howto100m.pth (antoine77340/S3D_HowTo100M): 537 entries, of
# which 5 text_module.* and 76 BatchNorm num_batches_tracked.
PUBLISHED_SHAPES = {
    "conv1.conv1.weight": (64, 24, 2, 4, 4),
    "conv1.bn1.running_var": (64,),
    "conv_2b.conv1.weight": (64, 64, 1, 1, 1),
    "conv_2c.conv1.weight": (192, 64, 1, 3, 3),
    "conv_2c.conv2.weight": (192, 192, 3, 1, 1),
    "gating.fc.weight": (192, 192),
    "mixed_3b.conv_b1_b.conv1.weight": (128, 96, 1, 3, 3),
    "mixed_3b.gating_b3.fc.bias": (32,),
    "mixed_4f.conv_b3_b.conv1.weight": (128, 528, 1, 1, 1),
    "mixed_5b.conv_b3_b.conv1.weight": (128, 832, 1, 1, 1),
    "mixed_5c.conv_b1_b.conv2.weight": (384, 384, 3, 1, 1),
    "mixed_5c.gating_b0.fc.weight": (384, 384),
    "fc.weight": (512, 1024),
    "fc.bias": (512,),
}


def clip_input(batch: int = 1, t: int = 2, size: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.rand(batch, 3, t, size, size, generator=torch.Generator().manual_seed(seed))


def test_parameter_names_and_shapes_are_the_published_layout():
    state = S3D().state_dict()
    assert len(state) == 537 - 5
    assert sum(k.endswith("num_batches_tracked") for k in state) == 76
    for key, shape in PUBLISHED_SHAPES.items():
        assert tuple(state[key].shape) == shape, key


def test_checkpoint_loads_strictly_and_ignores_the_text_module(tiny_s3d_checkpoint):
    model = S3D.from_checkpoint(tiny_s3d_checkpoint)
    reference = random_s3d(seed=0)
    assert not model.training
    ref = reference.state_dict()
    assert all(torch.equal(v, ref[k]) for k, v in model.state_dict().items())
    with torch.no_grad():
        out = model(clip_input(batch=2))
    assert set(out) == {"video_embedding", "mixed_5c"}
    assert out["video_embedding"].shape == (2, 512) and out["mixed_5c"].shape == (2, 1024)
    assert out["video_embedding"].dtype == torch.float32
    assert not torch.allclose(out["video_embedding"][0], out["video_embedding"][1])
    with torch.no_grad():
        again = S3D.from_checkpoint(tiny_s3d_checkpoint)(clip_input(batch=2))
    assert torch.equal(again["mixed_5c"], out["mixed_5c"])  # deterministic


def test_optional_wrappers_and_buffers(tmp_path, tiny_s3d_checkpoint):
    """No num_batches_tracked (unused in eval), a DataParallel prefix, a state_dict wrapper."""
    state = torch.load(tiny_s3d_checkpoint, weights_only=True)
    slim = {f"module.{k}": v for k, v in state.items() if "num_batches_tracked" not in k}
    torch.save({"state_dict": slim}, tmp_path / "wrapped.pth")
    model = S3D.from_checkpoint(tmp_path / "wrapped.pth")
    assert torch.equal(model.fc.weight, state["fc.weight"])


@pytest.mark.parametrize("problem", ["missing", "unexpected", "shape", "not_a_dict", "no_file"])
def test_incomplete_or_wrong_checkpoints_are_refused(tmp_path, tiny_s3d_checkpoint, problem):
    state = torch.load(tiny_s3d_checkpoint, weights_only=True)
    path = tmp_path / "bad.pth"
    if problem == "missing":
        state.pop("mixed_4d.gating_b2.fc.weight")
        expect = "1 missing"
    elif problem == "unexpected":
        state["mixed_6a.conv_b0.conv1.weight"] = torch.zeros(1)
        expect = "1 unexpected"
    elif problem == "shape":
        state["fc.weight"] = torch.zeros(256, 1024)
        expect = r"fc.weight has shape \(256, 1024\), expected \(512, 1024\)"
    elif problem == "not_a_dict":
        state = [torch.zeros(1)]
        expect = "expected a state dict"
    else:
        path = tmp_path / "nowhere.pth"
        expect = "no such file"
    if problem != "no_file":
        torch.save(state, path)
    with pytest.raises(CheckpointError, match=expect):
        S3D.from_checkpoint(path)


class _Payload:
    """Unpickling this would run code (touch a file): a loader must refuse it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_loading_never_unpickles_code(tmp_path):
    marker = tmp_path / "code-ran"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"fc.weight": _Payload(marker)}, f)
    with pytest.raises(CheckpointError, match="not a loadable state dict"):
        S3D.from_checkpoint(path)
    assert not marker.exists()


def test_space_to_depth_puts_each_2x2x2_cell_in_channels():
    x = torch.arange(2 * 3 * 2 * 4 * 4, dtype=torch.float32).reshape(2, 3, 2, 4, 4)
    y = space_to_depth(x)
    assert y.shape == (2, 24, 1, 2, 2)
    # channel index = ((dt * 2 + dh) * 2 + dw) * C + c
    for dt, dh, dw, c in [(0, 0, 0, 0), (1, 0, 1, 2), (0, 1, 1, 1), (1, 1, 0, 0)]:
        channel = ((dt * 2 + dh) * 2 + dw) * 3 + c
        assert torch.equal(y[:, channel, 0], x[:, c, dt, dh::2, dw::2])


def test_tf_same_max_pool_pads_at_the_end():
    x = torch.rand(1, 2, 3, 5, 5)
    got = _max_pool_same(x, (1, 3, 3), (1, 2, 2))
    want = F.max_pool3d(F.pad(x, (0, 1, 0, 1)), (1, 3, 3), (1, 2, 2), ceil_mode=True)
    assert got.shape == (1, 2, 3, 3, 3) and torch.equal(got, want)
    assert _max_pool_same(x, (2, 2, 2), (2, 2, 2)).shape == (1, 2, 2, 3, 3)


def test_odd_sizes_are_refused():
    with pytest.raises(ValueError, match="even T, H, W"):
        S3D()(torch.rand(1, 3, 3, 16, 16))


def test_embed_windows_pads_the_last_window_and_matches_the_model(tiny_s3d_checkpoint):
    model = S3D.from_checkpoint(tiny_s3d_checkpoint)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)  # 2 windows of 4, 1 padded
    out = embed_windows(model, frames, window=4, batch_size=1)
    assert out["video_embedding"].shape == (2, 512) and out["mixed_5c"].shape == (2, 1024)
    assert out["video_embedding"].dtype == np.float32
    padded = np.concatenate([frames, np.zeros((1, 16, 16, 3), np.uint8)])
    x = torch.from_numpy(padded).reshape(2, 4, 16, 16, 3).permute(0, 4, 1, 2, 3).float() / 255
    with torch.no_grad():
        ref = model(x)
    np.testing.assert_allclose(out["mixed_5c"], ref["mixed_5c"].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["video_embedding"], ref["video_embedding"].numpy(),
                               rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="uint8"):
        embed_windows(model, frames.astype(np.float32), window=4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_autocast_matches_cpu(tiny_s3d_checkpoint):
    frames = np.random.default_rng(1).integers(0, 256, (8, 32, 32, 3), dtype=np.uint8)
    cpu = embed_windows(S3D.from_checkpoint(tiny_s3d_checkpoint), frames, window=4)
    gpu_model = S3D.from_checkpoint(tiny_s3d_checkpoint).to("cuda")
    for precision in ("fp16", "bf16"):
        gpu = embed_windows(gpu_model, frames, window=4, device=torch.device("cuda"),
                            precision=precision)
        np.testing.assert_allclose(gpu["mixed_5c"], cpu["mixed_5c"], rtol=0.05, atol=2e-2)


def test_bf16_autocast_path_runs_on_cpu(tiny_s3d_checkpoint):
    model = S3D.from_checkpoint(tiny_s3d_checkpoint)
    frames = np.random.default_rng(2).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    fp32 = embed_windows(model, frames, window=4)
    bf16 = embed_windows(model, frames, window=4, precision="bf16")
    assert bf16["mixed_5c"].dtype == np.float32
    np.testing.assert_allclose(bf16["mixed_5c"], fp32["mixed_5c"], rtol=0.1, atol=1e-2)
