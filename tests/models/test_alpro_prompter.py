"""ALPRO's prompter: parts against independent computations on a tiny config (written from
ALPRO's code, on the released state dict's keys), and loading the released layouts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from alpro_release import TINY, TINY_CONFIG, random_released_state

from vlprep.models.alpro import (
    CLIP_MEAN,
    CLIP_STD,
    AlproPrompter,
    alpro_ignore,
    mask_outside,
)
from vlprep.models.prompter import VIDEO_TEMPLATES
from vlprep.models.prompter import AlproPrompter as ReExported

HEADS = 2


@pytest.fixture(scope="module")
def tiny_state() -> dict[str, torch.Tensor]:
    return {k: v.double() if v.is_floating_point() else v
            for k, v in random_released_state(3, TINY, temp=0.9, std=0.3).items()}


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory, tiny_state) -> str:
    path = tmp_path_factory.mktemp("alpro-tiny") / "prompter_pretrained.pt"
    torch.save({k: v.float() if v.is_floating_point() else v for k, v in tiny_state.items()},
               path)
    return str(path)


@pytest.fixture(scope="module")
def tiny(tiny_ckpt, bert_tokenizer_dir) -> AlproPrompter:
    return AlproPrompter.from_checkpoint(tiny_ckpt, tokenizer=bert_tokenizer_dir,
                                         config=TINY_CONFIG)


# ---- an independent reference, straight from ALPRO's equations, on the released keys ----

def ln(x, s, p, eps):
    mu = x.mean(-1, keepdim=True)
    var = ((x - mu) ** 2).mean(-1, keepdim=True)
    return (x - mu) / torch.sqrt(var + eps) * s[p + ".weight"] + s[p + ".bias"]


def lin(x, s, p):
    return x @ s[p + ".weight"].T + s[p + ".bias"]


def gelu(x):
    return 0.5 * x * (1 + torch.erf(x / math.sqrt(2)))


def mha(q, k, v, heads, mask=None):
    """L x D queries/keys/values already projected -> L x D, per head softmax(qk/sqrt(dh))v."""
    d = q.shape[-1] // heads
    out = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)
        scores = q[:, sl] @ k[:, sl].T / math.sqrt(d)
        if mask is not None:
            scores = scores + (1.0 - mask) * -10000.0
        out.append(torch.softmax(scores, -1) @ v[:, sl])
    return torch.cat(out, -1)


def vit_attn(x, s, p):
    q, k, v = lin(x, s, p + ".qkv").chunk(3, dim=-1)
    return lin(mha(q, k, v, HEADS), s, p + ".proj")


def ref_video_feature(s, video):
    """video: T x 3 x H x W standardised (float64) -> the 256-d (here 8-d) crop embedding,
    and the final tokens as cls (D) and patches[t][n] (T x N x D)."""
    v = "visual_encoder.model."
    eps = 1e-6
    t_count, _, h, w = video.shape
    p = TINY.patch
    conv = s[v + "patch_embed.proj.weight"].reshape(TINY.width, -1)
    tok = []
    for t in range(t_count):
        row = []
        for i in range(h // p):
            for j in range(w // p):
                patch = video[t, :, i * p:(i + 1) * p, j * p:(j + 1) * p].reshape(-1)
                row.append(conv @ patch + s[v + "patch_embed.proj.bias"])
        tok.append(torch.stack(row))
    tok = torch.stack(tok)  # T x N x D
    n_count = tok.shape[1]
    tok = tok + s[v + "pos_embed"][0, 1:] + s[v + "time_embed"][0, :, None]
    cls = s[v + "cls_token"][0, 0] + s[v + "pos_embed"][0, 0]
    for b in range(TINY.depth):
        pre = f"{v}blocks.{b}."
        xt = tok.clone()
        for n in range(n_count):  # time: each patch position over the frames, no CLS
            seq = tok[:, n]
            r = vit_attn(ln(seq, s, pre + "temporal_norm1", eps), s, pre + "temporal_attn")
            xt[:, n] = seq + lin(r, s, pre + "temporal_fc")
        res_cls, res_p = [], []
        for t in range(t_count):  # space: each frame with a copy of the CLS token
            seq = torch.cat([cls[None], xt[t]])
            r = vit_attn(ln(seq, s, pre + "norm1", eps), s, pre + "attn")
            res_cls.append(r[0])
            res_p.append(r[1:])
        cls = cls + torch.stack(res_cls).mean(0)
        tok = xt + torch.stack(res_p)

        def mlp(x, pre=pre):
            y = ln(x, s, pre + "norm2", eps)
            return x + lin(gelu(lin(y, s, pre + "mlp.fc1")), s, pre + "mlp.fc2")

        cls, tok = mlp(cls), mlp(tok)
    cls, tok = ln(cls, s, v + "norm", eps), ln(tok, s, v + "norm", eps)
    feat = lin(cls, s, "vision_proj")
    return feat / feat.norm(), cls, tok


def ref_text_feature(s, ids, mask, layers):
    t = "text_encoder.bert."
    eps = 1e-12
    x = (s[t + "embeddings.word_embeddings.weight"][ids]
         + s[t + "embeddings.position_embeddings.weight"][: len(ids)]
         + s[t + "embeddings.token_type_embeddings.weight"][0])
    x = ln(x, s, t + "embeddings.LayerNorm", eps)
    for i in range(layers):
        pre = f"{t}encoder.layer.{i}."
        q, k, v = (lin(x, s, pre + f"attention.self.{n}") for n in ("query", "key", "value"))
        a = lin(mha(q, k, v, HEADS, mask), s, pre + "attention.output.dense")
        x = ln(a + x, s, pre + "attention.output.LayerNorm", eps)
        hdn = gelu(lin(x, s, pre + "intermediate.dense"))
        x = ln(lin(hdn, s, pre + "output.dense") + x, s, pre + "output.LayerNorm", eps)
    feat = lin(x[0], s, "text_proj")
    return feat / feat.norm()


def standardised(frames: np.ndarray) -> torch.Tensor:
    x = torch.from_numpy(frames).double().permute(0, 3, 1, 2) / 255.0
    return (x - torch.tensor(CLIP_MEAN).view(3, 1, 1).double()) / \
        torch.tensor(CLIP_STD).view(3, 1, 1).double()


def frames(t: int = TINY.frames, seed: int = 0, size: int = TINY.image) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (t, size, size, 3), dtype=np.uint8)


# ---- the tests ----

def test_public_import_and_tiny_load(tiny):
    assert ReExported is AlproPrompter
    assert tiny.temperature == pytest.approx(0.9)  # as stored: not clamped to 0.5
    assert tiny.image_size == TINY.image and len(tiny.sha256) == 64


def test_divided_space_time_matches_the_reference(tiny, tiny_state):
    video = frames()
    want, cls, tok = ref_video_feature(tiny_state, standardised(video))
    got = tiny.embed_videos(video[None])
    assert got.shape == (1, TINY.embed) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], want.numpy(), atol=2e-5)
    # token order of the encoder's output: 1 + n*T + t holds patch n of frame t
    model = tiny.model.double()
    try:
        with torch.no_grad():
            out = model.vision(standardised(video)[None])[0]
    finally:
        model.float()
    t_count, n_count = tok.shape[:2]
    assert out.shape == (1 + n_count * t_count, TINY.width)
    np.testing.assert_allclose(out[0].numpy(), cls.numpy(), atol=1e-9)
    for t in range(t_count):
        for n in range(n_count):
            np.testing.assert_allclose(out[1 + n * t_count + t].numpy(), tok[t, n].numpy(),
                                       atol=1e-9)


def test_frames_fewer_than_time_embed_use_nearest(tiny, tiny_state):
    state = dict(tiny_state)
    video = frames(t=2, seed=4)
    # ALPRO interpolates time_embed (1 x 3 x D) to 2 frames with mode='nearest': rows 0 and 1
    state["visual_encoder.model.time_embed"] = tiny_state["visual_encoder.model.time_embed"][:, :2]
    want, _, _ = ref_video_feature(state, standardised(video))
    np.testing.assert_allclose(tiny.embed_videos(video[None])[0], want.numpy(), atol=2e-5)


def test_text_mode_matches_the_reference_and_runs_only_the_first_layers(tiny, tiny_state):
    texts = ["A video of a dog.", "A footage of one kitchen."]
    enc = tiny.tokenizer(texts, max_length=15, padding="max_length", truncation=True)
    assert all(len(ids) == 15 for ids in enc["input_ids"])  # padded to 15, as ALPRO
    got = tiny.embed_texts(texts)
    for i in range(len(texts)):
        ids = torch.tensor(enc["input_ids"][i])
        mask = torch.tensor(enc["attention_mask"][i]).double()
        want = ref_text_feature(tiny_state, ids, mask, layers=2)  # fusion_layer of the config
        np.testing.assert_allclose(got[i], want.numpy(), atol=2e-5)
        deeper = ref_text_feature(tiny_state, ids, mask, layers=3)
        assert not np.allclose(got[i], deeper.numpy(), atol=1e-3)


def test_crops_are_masked_in_raw_pixels_then_normalised(tiny):
    video = frames(seed=1)
    box = (16, 0, 16, 32)  # left, top, width, height
    masked = mask_outside(video, box)
    assert (masked[:, :, :16] == 0).all() and (masked[:, :, 16:] == video[:, :, 16:]).all()
    got = tiny.embed_crops(video, [box, (0, 16, 32, 16)])
    assert got.shape == (2, TINY.embed) and got.dtype == np.float32
    np.testing.assert_allclose(got[0], tiny.embed_videos(masked[None])[0], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    # outside the box the network sees (0 - mean) / std, not 0
    from vlprep.models.alpro import standardise

    x = standardise(masked, torch.device("cpu"))
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), -np.array(CLIP_MEAN) / CLIP_STD,
                               rtol=1e-6)


def test_prompt_ensemble_is_the_plain_mean(tiny):
    entities = ["dog", "kitchen", "tomato"]
    prompts = tiny.embed_prompts(entities, VIDEO_TEMPLATES)
    assert prompts.shape == (3, TINY.embed) and prompts.dtype == np.float32
    for i, e in enumerate(entities):
        each = tiny.embed_texts([t.format(e) for t in VIDEO_TEMPLATES])
        np.testing.assert_allclose(prompts[i], each.mean(0), atol=1e-6)
    assert (np.linalg.norm(prompts, axis=1) < 1 - 1e-4).all()  # not re-normalised


def test_soft_labels_use_the_stored_temperature(tiny):
    rng = np.random.default_rng(0)
    crops = rng.normal(size=(4, TINY.embed)).astype(np.float32)
    prompts = rng.normal(size=(6, TINY.embed)).astype(np.float32)
    got = tiny.soft_labels(crops, prompts)
    logits = torch.from_numpy(crops) @ torch.from_numpy(prompts).T / 0.9
    assert got.shape == (4, 6) and got.dtype == np.float32
    np.testing.assert_allclose(got, torch.softmax(logits, 1).numpy(), atol=1e-6)


def test_alpro_literal_ignore_rule():
    probs = np.array([[0.9, 0.1], [0.1, 0.9], [0.15, 0.1], [0.5, 0.5]])
    # argmax index < 0.2: only rows whose top entity is entity 0 (ties: the first)
    assert alpro_ignore(probs).tolist() == [True, False, True, True]


def test_deterministic(tiny):
    video = frames(seed=7)
    a = tiny.embed_crops(video, [(0, 0, 16, 16)])
    b = tiny.embed_crops(video, [(0, 0, 16, 16)])
    assert np.array_equal(a, b)


# ---- the released layout, full size ----

def layouts(state: dict, full: bool = True) -> dict[str, object]:
    """The accepted layouts of the same weights (full size: two files cover all four steps:
    a wrapper around `module.` keys, and AlproForPretrain's `prompter.` keys)."""
    d = 768 if full else TINY.width
    student = {"temp": torch.tensor(0.3), "vision_proj.weight": torch.zeros(4, d),
               "mpm_head.0.weight": torch.zeros(4, d)}
    module = {"module." + k: v for k, v in state.items()}
    pretrain = {**student, **{"prompter." + k: v for k, v in state.items()}}
    if full:
        return {"wrapped-module": {"model": module}, "pretrain": pretrain}
    no_bert = {k.replace("text_encoder.bert.", "text_encoder."): v for k, v in state.items()}
    return {"wrapped": {"model": state}, "model_state_dict": {"model_state_dict": state,
                                                              "step": 3},
            "module": module, "pretrain": pretrain, "pretrain-module": {
                "module." + k: v for k, v in pretrain.items()}, "no-bert-prefix": no_bert}


def test_every_layout_on_a_tiny_checkpoint(tiny, tiny_state, bert_tokenizer_dir, tmp_path):
    state = {k: v.float() if v.is_floating_point() else v for k, v in tiny_state.items()}
    want = tiny.embed_prompts(["dog"], VIDEO_TEMPLATES[:2])
    video = tiny.embed_crops(frames(seed=2), [(0, 0, 16, 32)])
    for name, obj in layouts(state, full=False).items():
        torch.save(obj, tmp_path / "x.pt")
        other = AlproPrompter.from_checkpoint(tmp_path / "x.pt", tokenizer=bert_tokenizer_dir,
                                              config=TINY_CONFIG)
        assert other.temperature == pytest.approx(0.9), name
        assert np.array_equal(other.embed_prompts(["dog"], VIDEO_TEMPLATES[:2]), want), name
        assert np.array_equal(other.embed_crops(frames(seed=2), [(0, 0, 16, 32)]), video), name


def test_full_size_checkpoint_loads_in_every_layout(alpro_checkpoint, alpro_full_state,
                                                    bert_tokenizer_dir, tmp_path):
    plain = AlproPrompter.from_checkpoint(alpro_checkpoint, tokenizer=bert_tokenizer_dir)
    assert plain.temperature == pytest.approx(0.05)
    state = {k: v for k, v in plain.model.state_dict().items()}
    assert len(state) == 353
    entities = ["dog", "kitchen"]
    prompts = plain.embed_prompts(entities, VIDEO_TEMPLATES[:2])
    assert prompts.shape == (2, 256) and prompts.dtype == np.float32
    assert np.array_equal(prompts, plain.embed_prompts(entities, VIDEO_TEMPLATES[:2]))
    prompts1 = plain.embed_prompts(entities, VIDEO_TEMPLATES[:1])
    # weights are the file's: the stored TimeSformer and the text layers 0-5
    s = alpro_full_state
    assert torch.equal(state["vision.blocks.11.temporal_attn.qkv.weight"],
                       s["visual_encoder.model.blocks.11.temporal_attn.qkv.weight"])
    assert torch.equal(state["text.encoder.layer.5.output.dense.weight"],
                       s["text_encoder.bert.encoder.layer.5.output.dense.weight"])
    del plain
    for name, obj in layouts(alpro_full_state).items():
        path = tmp_path / f"{name}.pt"
        torch.save(obj, path)
        other = AlproPrompter.from_checkpoint(path, tokenizer=bert_tokenizer_dir)
        assert other.temperature == pytest.approx(0.05), name  # the prompter's, not the student's
        theirs = other.model.state_dict()
        for key in ("temp", "vision.cls_token", "vision_proj.weight", "vision.norm.bias",
                    "text.encoder.layer.0.attention.self.query.weight"):
            assert torch.equal(theirs[key], state[key]), (name, key)
        assert np.array_equal(other.embed_prompts(entities, VIDEO_TEMPLATES[:1]), prompts1)
        del other
        path.unlink()


def test_wrong_layout_is_refused_naming_the_first_missing_key(alpro_full_state,
                                                              bert_tokenizer_dir, tmp_path):
    from vlprep.errors import CheckpointError

    state = dict(alpro_full_state)
    for key in ("visual_encoder.model.blocks.3.temporal_fc.weight",
                "text_encoder.bert.encoder.layer.4.attention.self.key.bias"):
        del state[key]
    path = tmp_path / "broken.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as err:
        AlproPrompter.from_checkpoint(path, tokenizer=bert_tokenizer_dir)
    message = str(err.value)
    assert "\n" not in message
    assert "'visual_encoder.model.blocks.3.temporal_fc.weight' is missing" in message
    # a file of another model (here: a CLIP-like naming) names the first key it lacks
    torch.save({"vision_model.embeddings.patch_embedding.weight": torch.zeros(3),
                "temp": torch.tensor(0.07)}, path)
    with pytest.raises(CheckpointError, match="'visual_encoder.model.cls_token' is missing"):
        AlproPrompter.from_checkpoint(path, tokenizer=bert_tokenizer_dir)


def test_wrong_shape_and_pickled_code_are_refused(tiny_state, bert_tokenizer_dir, tmp_path):
    from vlprep.errors import CheckpointError

    state = {k: v.float() if v.is_floating_point() else v for k, v in tiny_state.items()}
    state["vision_proj.weight"] = torch.zeros(3, 3)
    path = tmp_path / "shape.pt"
    torch.save(state, path)
    with pytest.raises(CheckpointError, match=r"'vision_proj.weight' has shape \(3, 3\)"):
        AlproPrompter.from_checkpoint(path, tokenizer=bert_tokenizer_dir, config=TINY_CONFIG)
    torch.save({"model": Unpicklable()}, path)
    with pytest.raises(CheckpointError, match="weights_only"):
        AlproPrompter.from_checkpoint(path, tokenizer=bert_tokenizer_dir, config=TINY_CONFIG)


class Unpicklable:
    """Loading this needs code execution, which weights_only refuses."""
