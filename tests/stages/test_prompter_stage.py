from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch
from pydantic import ValidationError

from vlprep.models.prompter import (
    IMAGE_TEMPLATES,
    VIDEO_TEMPLATES,
    ClipPrompter,
    random_clip_model,
)
from vlprep.models.tokenizers import load_tokenizer
from vlprep.schemas import SOFT_LABELS
from vlprep.stages.base import OUTPUTS, Resources, VideoError
from vlprep.stages.crops import crop_view, sample_boxes
from vlprep.stages.entities import PARTIAL, EntitiesOptions, EntitiesStage
from vlprep.stages.frames import SampledFrames
from vlprep.stages.prompter import PrompterOptions, PrompterStage
from vlprep.store import Store

ENTITIES = ["dog", "kitchen", "bike", "phone", "rabbit", "car", "tree", "ball"]
TINY_TEXT = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
             "intermediate_size": 37}


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> str:
    """A store holding only an `entities` table, as the entities stage writes it."""
    root = tmp_path_factory.mktemp("store")
    counts = pa.table({"lemma": ENTITIES, "count": list(range(20, 20 - len(ENTITIES), -1))},
                      schema=PARTIAL)
    table = EntitiesStage(EntitiesOptions(), Resources()).finalize(counts)["entities"]
    Store(str(root)).write_unit("agg-entities", 0, {"entities": table}, 1 << 20)
    return str(root)


@pytest.fixture
def options(tiny_clip_config, clip_tokenizer_dir) -> dict:
    return {"init": "random", "seed": 0, "tokenizer": str(clip_tokenizer_dir),
            "device": "cpu", "model_config": {"vision_config": tiny_clip_config,
                                              "text_config": TINY_TEXT, "projection_dim": 16}}


def record(video_id: str, n: int = 4, seed: int = 0, path: str | None = None) -> dict:
    rng = np.random.default_rng(seed)
    return {"video_id": video_id, "path": path or f"/{video_id}.mp4", "partition": 0,
            "frames": SampledFrames(
                frames=rng.integers(0, 256, (n, 224, 224, 3), dtype=np.uint8),
                indices=np.arange(n, dtype=np.int64) * 7 + 2,
                times=np.arange(n, dtype=np.float32))}


def run(store: str, records: list[dict], **options) -> list[list[dict]]:
    stage = PrompterStage(PrompterOptions.model_validate(options), Resources(), store=store)
    stage(records)
    out = []
    for r in records:
        table = r[OUTPUTS]["soft_labels"]
        assert table.schema.equals(SOFT_LABELS, check_metadata=True)
        out.append(table.to_pylist())
    return out


def test_rows_match_a_direct_computation(store, options, clip_tokenizer_dir):
    rec = record("vid-a")
    [rows] = run(store, [rec], **options, num_crops=3, top_k=5)
    assert len(rows) == 3 and [r["crop"] for r in rows] == [0, 1, 2]
    boxes = sample_boxes("vid-a", 0, 3, 224, 224)
    # the same thing by hand: the same random model, crops, prompt ensemble and softmax
    tok = load_tokenizer(str(clip_tokenizer_dir), "clip")
    model = random_clip_model(tok, 0, options["model_config"])
    prompter = ClipPrompter(model, tok, torch.device("cpu"))
    prompts = np.mean([prompter.embed_texts([t.format(e) for e in ENTITIES])
                       for t in VIDEO_TEMPLATES], axis=0)
    for row, box in zip(rows, boxes, strict=True):
        assert (row["left"], row["top"], row["width"], row["height"]) == (
            box.left, box.top, box.width, box.height)
        assert row["frame_indices"] == [2, 9, 16, 23] and row["templates"] == "video"
        frames = prompter.embed_images(crop_view(rec["frames"].frames, box, "masked", 224))
        crop = frames.mean(0) / np.linalg.norm(frames.mean(0))
        logits = crop @ prompts.T / prompter.temperature
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        order = np.argsort(-probs)[:5]
        assert row["entity_ids"] == order.tolist()
        np.testing.assert_allclose(row["probs"], probs[order], rtol=1e-4, atol=1e-6)
        assert sum(row["probs"]) <= 1 and row["top_prob"] == row["probs"][0]
        assert row["low_confidence"] == (row["top_prob"] < 0.2)


def test_deterministic_and_independent_of_batching(store, options):
    batch = run(store, [record("a", seed=1), record("b", n=2, seed=2)], **options)
    again = run(store, [record("b", n=2, seed=2)], **options)
    assert batch[1] == again[0]
    assert batch[0] == run(store, [record("a", seed=1)], **options)[0]
    other_seed = run(store, [record("a", seed=1)], **options, crop_seed=1)[0]
    assert [r["left"] for r in other_seed] != [r["left"] for r in batch[0]] or [
        r["top"] for r in other_seed] != [r["top"] for r in batch[0]]


def test_confidence_flag_is_on_the_probability(store, options):
    # a high temperature spreads the labels (8 entities: about 1/8 each): all flagged
    [unsure] = run(store, [record("a")], **options, temperature=100.0)
    assert all(r["low_confidence"] and r["top_prob"] < 0.2 for r in unsure)
    # a very low temperature makes the top label certain: none flagged, ids unchanged
    [sure] = run(store, [record("a")], **options, temperature=1e-6)
    assert all(not r["low_confidence"] and r["top_prob"] > 0.99 for r in sure)
    assert [r["entity_ids"][0] for r in sure] == [r["entity_ids"][0] for r in unsure]
    assert all(sum(r["probs"]) <= 1 for r in sure)


def test_image_inputs_use_image_templates(store, options):
    stage = PrompterStage(PrompterOptions.model_validate(options), Resources(), store=store)
    stage.setup()
    [row] = run(store, [record("img", n=1, path="/data/photo.JPG")], **options,
                num_crops=1)[0:1][0]
    assert row["templates"] == "image" and len(row["frame_indices"]) == 1
    video = stage.prompt_embeddings("video")
    image = stage.prompt_embeddings("image")
    assert video.shape == image.shape == (len(ENTITIES), 16) and not np.allclose(video, image)
    expected = np.mean([stage.prompter.embed_texts([t.format("dog")]) for t in IMAGE_TEMPLATES],
                       axis=0)
    np.testing.assert_allclose(image[0], expected[0], atol=1e-6)


def test_vtc_checkpoint_as_prompter(store, tiny_clip_config, bert_tokenizer_dir, tmp_path):
    from vlprep.models.vtc import VtcModel, save_vtc

    tok = load_tokenizer(str(bert_tokenizer_dir), "bert")
    model = VtcModel(tiny_clip_config, {**TINY_TEXT, "vocab_size": len(tok)}, 8)
    save_vtc(model, tok, tmp_path / "vtc")
    [rows] = run(store, [record("a")], prompter="alpro-vtc", checkpoint=str(tmp_path / "vtc"),
                 device="cpu", num_crops=2, top_k=20, crop_view="resized")
    assert len(rows) == 2 and all(len(r["entity_ids"]) == len(ENTITIES) for r in rows)
    assert all(abs(sum(r["probs"]) - 1) < 1e-5 for r in rows)  # all entities: sums to 1


def test_missing_entities_or_frames(options, store, tmp_path):
    stage = PrompterStage(PrompterOptions.model_validate(options), Resources(),
                          store=str(tmp_path))
    with pytest.raises(FileNotFoundError, match="no entities table"):
        stage.setup()
    stage = PrompterStage(PrompterOptions.model_validate(options), Resources(), store=store)
    with pytest.raises(VideoError, match="no sampled frames"):
        stage([{"video_id": "x", "path": "/x.mp4", "partition": 0}])
    # entities given before setup (e.g. by a planner) need no store
    stage = PrompterStage(PrompterOptions.model_validate(options), Resources())
    stage.entities = ["dog", "cat"]
    rec = record("a")
    stage([rec])
    assert all(max(r["entity_ids"]) < 2 for r in rec[OUTPUTS]["soft_labels"].to_pylist())


def test_options(tmp_path):
    with pytest.raises(ValidationError, match="checkpoint is required"):
        PrompterOptions()
    with pytest.raises(ValidationError, match="needs a tokenizer"):
        PrompterOptions(init="random")
    with pytest.raises(ValidationError, match="prompter: clip or alpro"):
        PrompterOptions(init="random", prompter="alpro-vtc", tokenizer="builtin:demo")
    with pytest.raises(ValidationError, match="not a directory"):
        PrompterOptions(checkpoint=str(tmp_path / "nowhere"))
    with pytest.raises(ValidationError, match="low <= high"):
        PrompterOptions(init="random", tokenizer="builtin:demo", crop_scale=(0.5, 0.3))
    opts = PrompterOptions.model_validate({"init": "random", "tokenizer": "builtin:demo",
                                           "model_config": {"projection_dim": 8}})
    assert (opts.num_crops, opts.top_k, opts.min_top_prob, opts.patch_size) == (4, 10, 0.2, 16)
    assert opts.clip_config == {"projection_dim": 8}
