from __future__ import annotations

import json
import logging
import subprocess
import sys

import numpy as np
import pytest
import torch
from transformers import CLIPConfig, CLIPModel

from vlprep.models.clip import (
    CLIP_MEAN,
    CLIP_STD,
    CheckpointError,
    ClipFeatures,
    clip_features,
    embed_frames,
    embedding_dim,
    export_clip_onnx,
    load_clip,
    normalise,
    onnx_clip_features,
    random_clip,
)
from vlprep.models.onnx_runtime import onnxruntime_available


def frames(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_random_init_is_deterministic_per_seed(tiny_clip_config):
    a = random_clip(seed=3, config=tiny_clip_config)
    b = random_clip(seed=3, config=tiny_clip_config)
    c = random_clip(seed=4, config=tiny_clip_config)
    assert same_weights(a, b) and not same_weights(a, c)
    assert not a.training and embedding_dim(a) == 16


def test_random_init_leaves_the_global_rng_alone(tiny_clip_config):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    random_clip(seed=0, config=tiny_clip_config)
    assert torch.equal(torch.rand(3), expected)


def test_random_init_ignores_earlier_rng_use(tiny_clip_config):
    """What differs between processes is the RNG's history; the weights must not see it."""
    torch.manual_seed(1)
    a = random_clip(seed=5, config=tiny_clip_config)
    torch.manual_seed(999)
    torch.rand(1000)
    np.random.seed(2)
    assert same_weights(a, random_clip(seed=5, config=tiny_clip_config))


@pytest.mark.slow
def test_random_init_is_the_same_in_another_process(tiny_clip_config):
    code = ("import json, sys; from vlprep.models.clip import random_clip; "
            "m = random_clip(7, json.loads(sys.argv[1])); "
            "print(sum(float(v.double().sum()) for v in m.state_dict().values()))")
    out = subprocess.run([sys.executable, "-c", code, json.dumps(tiny_clip_config)],
                         check=True, capture_output=True, text=True).stdout
    here = sum(float(v.double().sum())
               for v in random_clip(7, tiny_clip_config).state_dict().values())
    assert float(out.strip().splitlines()[-1]) == here


def test_random_init_warns_loudly(tiny_clip_config, caplog):
    with caplog.at_level(logging.WARNING, logger="vlprep"):
        random_clip(seed=0, config=tiny_clip_config)
    assert "RANDOMLY INITIALISED" in caplog.text


def test_default_config_is_vit_b16_like():
    from vlprep.models.clip import DEFAULT_VISION_CONFIG as cfg
    assert (cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
            cfg["patch_size"], cfg["image_size"], cfg["projection_dim"]) == (
        768, 12, 12, 16, 224, 512)


def test_checkpoint_on_disk_gives_the_in_memory_embeddings(tiny_clip_dir, tiny_clip_config):
    loaded = load_clip(tiny_clip_dir)
    memory = random_clip(seed=0, config=tiny_clip_config)
    assert same_weights(loaded, memory) and not loaded.training
    x = frames(5)
    np.testing.assert_array_equal(embed_frames(loaded, x), embed_frames(memory, x))


def test_embeddings_are_unit_norm_float32_and_batch_independent(tiny_clip_dir):
    model = load_clip(tiny_clip_dir)
    x = frames(7)
    emb = embed_frames(model, x, "cpu", batch_size=64)
    assert emb.shape == (7, 16) and emb.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_allclose(embed_frames(model, x, "cpu", batch_size=3), emb, atol=1e-5)
    assert not np.allclose(emb[0], emb[1])  # different frames, different vectors
    assert embed_frames(model, x[:0]).shape == (0, 16)


def test_embedding_uses_clip_normalisation(tiny_clip_dir):
    model = load_clip(tiny_clip_dir)
    x = frames(2)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    pixels = (torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255 - mean) / std
    with torch.no_grad():
        ref = torch.nn.functional.normalize(model(pixel_values=pixels).image_embeds, dim=-1)
    np.testing.assert_allclose(embed_frames(model, x), ref.numpy(), atol=1e-5)


def test_normalise_in_a_reused_buffer_matches_the_formula():
    rng = np.random.default_rng(0)
    mean, std = torch.tensor(CLIP_MEAN).view(1, 3, 1, 1), torch.tensor(CLIP_STD).view(1, 3, 1, 1)
    buffer = torch.empty(5, 12, 20, 3)
    for n in (5, 2, 5):  # the buffer is reused for fewer and again more frames
        x = torch.from_numpy(rng.integers(0, 256, (n, 12, 20, 3), dtype=np.uint8))
        ref = (x.permute(0, 3, 1, 2).float() / 255 - mean) / std
        torch.testing.assert_close(normalise(x, buffer), ref, atol=1e-5, rtol=0)
        torch.testing.assert_close(normalise(x), ref, atol=1e-5, rtol=0)


def test_wrong_frame_size_is_a_clear_error(tiny_clip_dir):
    model = load_clip(tiny_clip_dir)
    with pytest.raises(ValueError, match="model takes 224x224"):
        embed_frames(model, np.zeros((1, 256, 256, 3), np.uint8))


def test_pytorch_model_bin_and_full_clip_directories(tmp_path, tiny_clip_config):
    """A full CLIPModel directory (as OpenAI's are published) loads its vision tower, both
    from safetensors and from a pickle-free pytorch_model.bin."""
    text = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
            "intermediate_size": 37, "vocab_size": 49408}
    torch.manual_seed(0)
    full = CLIPModel(CLIPConfig(vision_config=tiny_clip_config, text_config=text,
                                projection_dim=16))
    st_dir, bin_dir = tmp_path / "st", tmp_path / "bin"
    full.save_pretrained(st_dir, safe_serialization=True)
    bin_dir.mkdir()
    (bin_dir / "config.json").write_text((st_dir / "config.json").read_text())
    torch.save(full.state_dict(), bin_dir / "pytorch_model.bin")
    ref = full.state_dict()
    for path in (st_dir, bin_dir):
        model = load_clip(path)
        own = model.state_dict()
        assert all(torch.equal(own[k], ref[k]) for k in own), path


def test_bad_checkpoint_directories(tmp_path, tiny_clip_dir):
    with pytest.raises(CheckpointError, match="no config.json"):
        load_clip(tmp_path)
    (tmp_path / "config.json").write_text((tiny_clip_dir / "config.json").read_text())
    with pytest.raises(CheckpointError, match="no model.safetensors or pytorch_model.bin"):
        load_clip(tmp_path)
    state = load_clip(tiny_clip_dir).state_dict()
    state.pop("visual_projection.weight")
    torch.save(state, tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="weights missing for 1 parameters"):
        load_clip(tmp_path)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_fp16_autocast_matches_cpu(tiny_clip_dir):
    x = frames(9)
    cpu = embed_frames(load_clip(tiny_clip_dir), x, "cpu")
    for precision, atol in (("fp16", 1e-2), ("bf16", 3e-2)):
        gpu = embed_frames(load_clip(tiny_clip_dir).to("cuda"), x, "cuda", batch_size=4,
                           precision=precision)
        assert gpu.dtype == np.float32 and gpu.shape == cpu.shape
        np.testing.assert_allclose(np.linalg.norm(gpu, axis=1), 1.0, rtol=1e-5)
        np.testing.assert_allclose(gpu, cpu, atol=atol)


def test_patch_tokens_are_the_tokens_entering_the_chosen_block(tiny_clip_dir):
    model = load_clip(tiny_clip_dir)
    x = frames(3)
    pixels = normalise(torch.from_numpy(x))
    with torch.no_grad():
        hidden = model(pixel_values=pixels, output_hidden_states=True).hidden_states
    # hidden_states[i] is the input of block i (hidden_states[0]: after the pre-layernorm)
    emb, last = clip_features(ClipFeatures(model, patch_block=-1), x)
    assert last.shape == (3, 196, 32) and last.dtype == np.float32
    np.testing.assert_allclose(last, hidden[-2][:, 1:].numpy(), atol=1e-5)
    np.testing.assert_allclose(emb, embed_frames(model, x), atol=1e-6)
    _, first = clip_features(ClipFeatures(model, patch_block=0), x)
    np.testing.assert_allclose(first, hidden[0][:, 1:].numpy(), atol=1e-5)
    _, grid = clip_features(ClipFeatures(model, patch_block=-1, patch_grid=7), x)
    want = last.reshape(3, 14, 14, 32).reshape(3, 7, 2, 7, 2, 32).mean(axis=(2, 4))
    np.testing.assert_allclose(grid, want.reshape(3, 49, 32), atol=1e-5)
    _, none = clip_features(ClipFeatures(model), x)
    assert none.shape == (3, 0, 32)
    with pytest.raises(ValueError, match="out of range"):
        ClipFeatures(model, patch_block=2)


@pytest.mark.skipif(not onnxruntime_available(), reason="needs onnxruntime")
def test_onnx_export_matches_torch(tmp_path, tiny_clip_dir):
    from vlprep.models.onnx_runtime import OnnxSession

    features = ClipFeatures(load_clip(tiny_clip_dir), patch_block=-1, patch_grid=7)
    session = OnnxSession(export_clip_onnx(features, tmp_path / "clip.onnx"))
    assert session.metadata["patch_block"] == 1 and session.metadata["patch_grid"] == 7
    assert session.providers == ["CPUExecutionProvider"]
    x = frames(5)
    emb, tokens = onnx_clip_features(session, x, batch_size=3)  # any batch size
    ref_emb, ref_tokens = clip_features(features, x)
    np.testing.assert_allclose(emb, ref_emb, atol=1e-4)
    np.testing.assert_allclose(tokens, ref_tokens, atol=1e-4)
