"""ALPRO: headtail frames, crop cells, PEM targets, and the --vtc-only prompter export that
the prompter stage loads (checked to give the same embeddings as the trained model)."""

from __future__ import annotations

import json
import random

import numpy as np
import pyarrow as pa
import pytest
import torch
from train_fake_store import write_store

from vlprep.schemas import TABLES, with_vector_dims
from vlprep.store import Store
from vlprep.train.alpro import Alpro, crop_cells, headtail
from vlprep.train.loop import make_loader, train
from vlprep.train.method import TrainConfig
from vlprep.train.store_reader import StoreReader

TINY = {"dim": 32, "embed_dim": 16, "heads": 2, "layers": 1, "text_layers": 1}
CLIP = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
        "num_attention_heads": 2, "patch_size": 16, "image_size": 32, "projection_dim": 24}


def test_headtail_takes_half_from_each_half():
    rng = random.Random(0)
    for _ in range(100):
        pick = headtail(8, 4, rng)
        assert pick == sorted(pick) and len(set(pick)) == 4
        assert sum(i < 4 for i in pick) == 2
    assert headtail(3, 4, rng) == [0, 1, 2]
    assert headtail(8, 0, rng) == list(range(8))


def test_crop_cells_cover_the_box():
    # a 112-pixel frame on a 7 x 7 grid: 16-pixel cells
    assert crop_cells(0, 0, 16, 16, 112, 7).tolist() == [0]
    assert crop_cells(16, 32, 32, 16, 112, 7).tolist() == [15, 16]
    assert len(crop_cells(0, 0, 112, 112, 112, 7)) == 49
    assert crop_cells(100, 100, 5, 5, 112, 7).tolist() == [48]


def test_pem_reads_soft_labels_and_skips_low_confidence(tmp_path):
    store = write_store(tmp_path / "s", 16, tables=("clip_frames", "texts", "soft_labels"))
    (tmp_path / "s" / "_recipe.json").write_text(json.dumps({"stages": [
        {"kind": "sample", "options": {"size": 96, "key": "frames"}},
        {"kind": "prompter", "options": {"frames": "frames"}}]}))
    method = Alpro(StoreReader(str(store)), {**TINY, "train_frames": 2})
    assert method.facts["pem"] and method.facts["num_entities"] == 8
    cfg = TrainConfig(store=str(store), out=str(tmp_path / "o"), batch_size=4, quiet=True,
                      eval_fraction=0.0)
    batch = next(iter(make_loader(method, cfg, "train", 0)))
    assert batch["frames"].shape[1] == 2  # headtail picks
    assert batch["crops"].shape == (4, 4, 8)  # a crop per video, pooled per frame
    assert torch.allclose(batch["targets"].sum(1), torch.ones(4))
    # only crop 0 is confident; its targets are the stored top-k renormalised
    assert set(torch.count_nonzero(batch["targets"], dim=1).tolist()) == {2}
    model = method.build_model()
    terms = method.losses(model, batch)
    assert {"vtc", "pem", "loss"} <= terms.keys() and torch.isfinite(terms["loss"])
    assert terms["loss"] > terms["vtc"]


def test_pem_uses_the_full_distribution_when_stored(tmp_path):
    store = write_store(tmp_path / "s", 8, tables=("clip_frames", "texts", "soft_labels"),
                        full_probs=True)
    (tmp_path / "s" / "_recipe.json").write_text(json.dumps({"stages": [
        {"kind": "sample", "options": {"size": 96, "key": "frames"}},
        {"kind": "prompter", "options": {"frames": "frames", "store_full": True}}]}))
    method = Alpro(StoreReader(str(store)), {**TINY, "train_frames": 2})
    assert method.facts["full_labels"]
    cfg = TrainConfig(store=str(store), out=str(tmp_path / "o"), batch_size=4, quiet=True,
                      eval_fraction=0.0)
    batch = next(iter(make_loader(method, cfg, "train", 0)))
    # probs_full (uniform over the 8 entities here) is the target, not the top-2
    assert torch.allclose(batch["targets"], torch.full((4, 8), 1 / 8))


def _vtc_store(root, count=24, seed=0):
    """A store whose frame embeddings really are a tiny random CLIP's, with a recipe naming
    it and the demo BERT tokenizer: what the export rebuilds the prompter from."""
    from vlprep.models.clip import embed_frames, random_clip
    from vlprep.models.tokenizers import bert_ids, load_tokenizer

    clip = random_clip(3, CLIP)
    tok = load_tokenizer("builtin:demo", "bert")
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 255, size=(count, 4, 32, 32, 3), dtype=np.uint8)
    emb = embed_frames(clip, frames.reshape(-1, 32, 32, 3)).reshape(count, 4, -1)
    colours = ["red", "green", "blue", "white", "black", "yellow"]
    texts = [f"a {colours[i % 6]} thing" for i in range(count)]
    ids = bert_ids(tok, texts)
    store = Store(str(root))
    store.fs.create_dir(store.root)
    schema = with_vector_dims(TABLES["clip_frames"], embedding=emb.shape[-1])
    vids = [f"v{i:03d}" for i in range(count)]
    frames_table = pa.Table.from_pylist([
        {"video_id": v, "frame_index": k, "time": float(k), "sample_rank": k,
         "embedding": emb[i, k].astype(np.float16).tolist()}
        for i, v in enumerate(vids) for k in range(4)], schema=schema)
    texts_table = pa.Table.from_pylist([
        {"video_id": v, "segment": 0, "source": "caption", "text": texts[i],
         "bert_ids": ids[i]} for i, v in enumerate(vids)], schema=TABLES["texts"])
    store.write_partition(0, count, {"clip_frames": frames_table, "texts": texts_table}, 1 << 20)
    (root / "_recipe.json").write_text(json.dumps({"stages": [
        {"kind": "texts", "options": {"bert_tokenizer": "builtin:demo"}},
        {"kind": "clip", "options": {"model_config": CLIP}, "weights": {"init": "random",
                                                                         "seed": 3}}]}))
    return frames, texts


def test_vtc_only_exports_the_prompter_the_prompter_stage_loads(tmp_path):
    from vlprep.models.vtc import VtcPrompter, load_vtc

    frames, texts = _vtc_store(tmp_path / "store")
    cfg = TrainConfig(store=str(tmp_path / "store"), out=str(tmp_path / "run"), epochs=1,
                      batch_size=8, quiet=True, options={**TINY, "vtc_only": True})
    method = Alpro(StoreReader(cfg.store), cfg.options)
    result = train(method, cfg)
    assert result["prompter"] == str(tmp_path / "run" / "prompter")
    model_file = tmp_path / "run" / "epoch-0000" / "model.safetensors"
    model = method.build_model()
    from vlprep.train.checkpoint import load_weights

    load_weights(model, model_file)
    model.eval()

    vtc, tokenizer, config = load_vtc(result["prompter"])
    prompter = VtcPrompter(vtc, tokenizer, config, torch.device("cpu"))
    # images: the exported CLIP + folded projection == our head on the stored embeddings
    reader = StoreReader(cfg.store)
    stored = reader.read_table("clip_frames", ["video_id", "sample_rank", "embedding"])
    first = stored.filter(pa.compute.equal(stored.column("video_id"), "v000"))
    emb = torch.tensor(np.stack(first.column("embedding").to_pylist()), dtype=torch.float32)
    ours = torch.nn.functional.normalize(model.frame_head(emb), dim=-1).detach().numpy()
    theirs = prompter.embed_images(frames[0])
    assert np.allclose(ours, theirs, atol=2e-3)  # fp16 storage of the embeddings
    # texts: the same BERT and projection on the same ids
    ids = torch.tensor([tokenizer(texts[0])["input_ids"]])
    ours_t = model.text_features(ids, torch.ones_like(ids, dtype=torch.bool)).detach().numpy()
    assert np.allclose(ours_t, prompter.embed_texts([texts[0]]), atol=1e-5)
    assert abs(prompter.temperature - model.temp.value.item()) < 1e-6


def test_vtc_only_without_a_loadable_tokenizer_skips_the_export(tmp_path, caplog):
    store = write_store(tmp_path / "s", 16)
    cfg = TrainConfig(store=str(store), out=str(tmp_path / "o"), epochs=1, batch_size=8,
                      quiet=True, options={**TINY, "vtc_only": True})
    result = train(Alpro(StoreReader(cfg.store), cfg.options), cfg)
    assert "prompter" not in result
    assert "no prompter export" in caplog.text


@pytest.mark.parametrize("missing", ["texts", "clip_frames"])
def test_missing_tables_are_named(tmp_path, missing):
    from vlprep.store import StoreError

    tables = tuple(t for t in ("clip_frames", "texts") if t != missing)
    store = write_store(tmp_path / "s", 4, tables=tables)
    with pytest.raises(StoreError, match=f"no {missing} table"):
        Alpro(StoreReader(str(store)), {})
