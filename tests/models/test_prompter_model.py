from __future__ import annotations

import logging

import numpy as np
import pytest
import torch

from vlprep.models.clip import CheckpointError
from vlprep.models.prompter import (
    IMAGE_TEMPLATES,
    VIDEO_TEMPLATES,
    ClipPrompter,
    float32_down,
    load_clip_model,
    prompt_embeddings,
    random_clip_model,
    soft_labels,
    top_k,
)
from vlprep.models.tokenizers import load_tokenizer
from vlprep.models.vtc import VtcModel, VtcPrompter, load_vtc, save_vtc

TINY_TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 37}


def tiny_config(tiny_clip_config) -> dict:
    return {"vision_config": tiny_clip_config, "text_config": TINY_TEXT, "projection_dim": 16}


@pytest.fixture(scope="module")
def clip_tok(clip_tokenizer_dir):
    return load_tokenizer(str(clip_tokenizer_dir), "clip")


def images(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 224, 224, 3), dtype=np.uint8)


class FakePrompter:
    """Deterministic text embeddings: a hashed bag of characters, normalised."""

    image_size, temperature = 224, 0.07

    def embed_texts(self, texts):
        out = np.zeros((len(texts), 8))
        for i, t in enumerate(texts):
            for c in t:
                out[i, ord(c) % 8] += 1
        return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def test_alpro_templates():
    assert len(VIDEO_TEMPLATES) == len(IMAGE_TEMPLATES) == 12
    assert VIDEO_TEMPLATES[0] == "A footage of a {}." and IMAGE_TEMPLATES[0] == "A photo of a {}."
    assert "A video footage of one {}." in VIDEO_TEMPLATES
    assert "A good picture of one {}." in IMAGE_TEMPLATES
    assert len(set(VIDEO_TEMPLATES) | set(IMAGE_TEMPLATES)) == 24


def test_prompt_ensemble_is_the_mean_of_normalised_embeddings():
    fake = FakePrompter()
    got = prompt_embeddings(fake, ["dog", "kitchen knife"], VIDEO_TEMPLATES)
    for i, entity in enumerate(["dog", "kitchen knife"]):
        each = fake.embed_texts([t.format(entity) for t in VIDEO_TEMPLATES])
        np.testing.assert_allclose(got[i], each.mean(axis=0), rtol=1e-6)
    assert (np.linalg.norm(got, axis=1) < 1).all()  # the average is not re-normalised


def test_soft_labels_and_top_k_match_a_direct_computation():
    rng = np.random.default_rng(0)
    crops, prompts = rng.normal(size=(3, 8)), rng.normal(size=(20, 8))
    probs = soft_labels(crops, prompts, 0.07)
    logits = crops @ prompts.T / 0.07
    direct = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, direct / direct.sum(1, keepdims=True), rtol=1e-12)
    ids, best = top_k(probs, 5)
    assert ids.shape == best.shape == (3, 5)
    for row in range(3):
        assert list(ids[row]) == list(np.argsort(-probs[row])[:5])
        assert (np.diff(best[row]) <= 0).all() and best[row].sum() <= 1 + 1e-12
    tied = np.array([[0.25, 0.25, 0.5, 0.0]])
    assert top_k(tied, 3)[0].tolist() == [[2, 0, 1]]  # ties: the lower id first
    assert top_k(tied, 10)[0].shape == (1, 4)


def test_float32_probabilities_never_round_up():
    p = np.array([1 - 1e-9, 1e-9 / 3, 1e-9 / 3, 1e-9 / 3])
    down = float32_down(p)
    assert down.dtype == np.float32 and (down.astype(np.float64) <= p).all()
    assert down.astype(np.float64).sum() <= 1 and p.astype(np.float32)[0] == 1.0


def test_random_clip_prompter_is_seeded_and_loud(tiny_clip_config, clip_tok, caplog):
    with caplog.at_level(logging.WARNING, logger="vlprep"):
        a = random_clip_model(clip_tok, 3, tiny_config(tiny_clip_config))
    assert "RANDOMLY INITIALISED" in caplog.text
    b = random_clip_model(clip_tok, 3, tiny_config(tiny_clip_config))
    c = random_clip_model(clip_tok, 4, tiny_config(tiny_clip_config))
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.config.text_config.vocab_size == len(clip_tok)
    assert a.config.text_config.eos_token_id == clip_tok.eos_token_id


def test_clip_prompter_embeddings(tiny_clip_config, clip_tok, tmp_path):
    model = random_clip_model(clip_tok, 0, tiny_config(tiny_clip_config))
    prompter = ClipPrompter(model, clip_tok, torch.device("cpu"), batch_size=3, text_batch=3)
    texts = prompter.embed_texts(["A video of a dog.", "A video of a cat.", "x", "y y"])
    imgs = prompter.embed_images(images(5))
    assert texts.shape == (4, 16) and imgs.shape == (5, 16)
    np.testing.assert_allclose(np.linalg.norm(texts, axis=1), 1, rtol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(imgs, axis=1), 1, rtol=1e-5)
    assert prompter.temperature == pytest.approx(0.07, rel=1e-3)  # CLIP's initial scale
    # chunking changes nothing, and the saved model gives the same embeddings
    model.save_pretrained(tmp_path, safe_serialization=True)
    again = ClipPrompter(load_clip_model(tmp_path), clip_tok, torch.device("cpu"), 64)
    np.testing.assert_allclose(again.embed_texts(["A video of a dog."]), texts[:1], atol=1e-5)
    np.testing.assert_allclose(again.embed_images(images(5)), imgs, atol=1e-5)
    with pytest.raises(ValueError, match="takes 224x224"):
        prompter.embed_images(np.zeros((1, 112, 112, 3), np.uint8))


def test_vision_only_checkpoint_is_refused(tiny_clip_dir, tmp_path):
    with pytest.raises(CheckpointError, match="full CLIP model"):
        load_clip_model(tiny_clip_dir)
    with pytest.raises(CheckpointError, match="no config.json"):
        load_clip_model(tmp_path)


def test_vtc_checkpoint_round_trip(tiny_clip_config, bert_tokenizer_dir, tmp_path):
    bert_tok = load_tokenizer(str(bert_tokenizer_dir), "bert")
    text = {**TINY_TEXT, "vocab_size": len(bert_tok), "max_position_embeddings": 40}
    torch.manual_seed(0)
    model = VtcModel(tiny_clip_config, text, embed_dim=12, temperature=0.05)
    save_vtc(model, bert_tok, tmp_path / "vtc")
    loaded, tok, config = load_vtc(tmp_path / "vtc")
    ref, got = model.state_dict(), loaded.state_dict()
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    assert config["embed_dim"] == 12 and tok("a dog")["input_ids"] == bert_tok("a dog")[
        "input_ids"]
    prompter = VtcPrompter(loaded, tok, config, torch.device("cpu"), batch_size=2)
    assert prompter.temperature == pytest.approx(0.05)
    t, v = prompter.embed_texts(["A video of a dog.", "a cat"]), prompter.embed_images(images(3))
    assert t.shape == (2, 12) and v.shape == (3, 12)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1, rtol=1e-5)
    # a video is the normalised mean of its frames, as the prompter stage pools crops
    from vlprep.models.clip import CLIP_MEAN, CLIP_STD
    from vlprep.models.prompter import normalised_pixels

    x = normalised_pixels(images(3), CLIP_MEAN, CLIP_STD, torch.device("cpu"))
    with torch.no_grad():
        video = loaded.video_features(x[None]).numpy()[0]
    mean = v.mean(axis=0)
    np.testing.assert_allclose(video, mean / np.linalg.norm(mean), atol=1e-5)


def test_bad_vtc_checkpoints(tiny_clip_config, bert_tokenizer_dir, tmp_path):
    import json

    from safetensors.torch import load_file, save_file

    bert_tok = load_tokenizer(str(bert_tokenizer_dir), "bert")
    model = VtcModel(tiny_clip_config, {**TINY_TEXT, "vocab_size": len(bert_tok)}, 8)
    root = save_vtc(model, bert_tok, tmp_path / "vtc")
    state = load_file(root / "model.safetensors")
    state.pop("text_proj.weight")
    save_file(state, str(root / "model.safetensors"))
    with pytest.raises(CheckpointError, match="1 weights missing"):
        load_vtc(root)
    config = json.loads((root / "config.json").read_text())
    (root / "config.json").write_text(json.dumps({**config, "format": "something-else"}))
    with pytest.raises(CheckpointError, match="not a vlprep.alpro-vtc"):
        load_vtc(root)
