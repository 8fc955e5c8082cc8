"""`prompter: alpro` in the stage: a tiny prompter in the released layout for the stage's own
logic (crop videos, rows, store_full, the ignore rule, the prompt cache), and the full-size
random checkpoint end to end into `soft_labels` (slow)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from alpro_release import TINY, TINY_CONFIG, random_released_state
from pydantic import ValidationError

from vlprep.models.alpro import AlproPrompter
from vlprep.models.prompter import VIDEO_TEMPLATES
from vlprep.schemas import SOFT_LABELS
from vlprep.stages.base import OUTPUTS, Resources, VideoError
from vlprep.stages.crops import sample_boxes
from vlprep.stages.frames import SampledFrames
from vlprep.stages.prompter import PrompterOptions, PrompterStage

ENTITIES = ["dog", "kitchen", "bike", "phone", "rabbit", "car", "tree", "ball"]


@pytest.fixture(scope="module")
def tiny_ckpt(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("alpro-stage") / "prompter_pretrained.pt"
    torch.save(random_released_state(5, TINY, temp=0.07, std=0.3), path)
    return str(path)


@pytest.fixture(scope="module")
def tiny(tiny_ckpt, bert_tokenizer_dir) -> AlproPrompter:
    return AlproPrompter.from_checkpoint(tiny_ckpt, tokenizer=bert_tokenizer_dir,
                                         config=TINY_CONFIG)


def record(video_id: str, n: int = TINY.frames, seed: int = 0, size: int = TINY.image) -> dict:
    rng = np.random.default_rng(seed)
    return {"video_id": video_id, "path": f"/{video_id}.mp4", "partition": 0,
            "frames": SampledFrames(
                frames=rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8),
                indices=np.arange(n, dtype=np.int64) * 5, times=np.arange(n, dtype=np.float32))}


def stage_for(tiny, tiny_ckpt, tokenizer, **options) -> PrompterStage:
    opts = PrompterOptions.model_validate({"prompter": "alpro", "checkpoint": tiny_ckpt,
                                           "tokenizer": str(tokenizer), "device": "cpu",
                                           "prompt_cache": "off", **options})
    stage = PrompterStage(opts, Resources())
    stage.entities, stage.prompter = list(ENTITIES), tiny  # the tiny config, not the full one
    return stage


def rows_of(stage, records):
    stage(records)
    tables = [r[OUTPUTS]["soft_labels"] for r in records]
    assert all(t.schema.equals(SOFT_LABELS, check_metadata=True) for t in tables)
    return [t.to_pylist() for t in tables]


def test_rows_are_the_api_soft_labels(tiny, tiny_ckpt, bert_tokenizer_dir):
    stage = stage_for(tiny, tiny_ckpt, bert_tokenizer_dir, num_crops=3, top_k=4,
                      store_full=True)
    rec = record("vid-a")
    frames = rec["frames"].frames
    [rows] = rows_of(stage, [rec])
    boxes = sample_boxes("vid-a", 0, 3, TINY.image, TINY.image)
    crops = tiny.embed_crops(frames, [(b.left, b.top, b.width, b.height) for b in boxes])
    probs = tiny.soft_labels(crops, tiny.embed_prompts(ENTITIES, VIDEO_TEMPLATES))
    for row, box, p in zip(rows, boxes, probs, strict=True):
        assert (row["left"], row["top"], row["width"], row["height"]) == (
            box.left, box.top, box.width, box.height)
        order = np.argsort(-p, kind="stable")[:4]
        assert row["entity_ids"] == order.tolist()
        np.testing.assert_allclose(row["probs"], p[order], rtol=1e-5)
        np.testing.assert_array_equal(np.array(row["probs_full"], np.float16),
                                      p.astype(np.float16))
        assert len(row["probs_full"]) == len(ENTITIES)
        assert row["low_confidence"] == (p.max() < 0.2)
    # not asked for: no full distribution
    [plain] = rows_of(stage_for(tiny, tiny_ckpt, bert_tokenizer_dir, num_crops=3),
                      [record("vid-a")])
    assert all(r["probs_full"] is None for r in plain)


def test_batched_across_videos_like_one_by_one(tiny, tiny_ckpt, bert_tokenizer_dir):
    stage = stage_for(tiny, tiny_ckpt, bert_tokenizer_dir)
    both = rows_of(stage, [record("a", seed=1), record("b", n=2, seed=2)])
    assert both[0] == rows_of(stage, [record("a", seed=1)])[0]
    assert both[1] == rows_of(stage, [record("b", n=2, seed=2)])[0]


def test_an_image_is_repeated_to_the_model_frames(tiny, tiny_ckpt, bert_tokenizer_dir):
    stage = stage_for(tiny, tiny_ckpt, bert_tokenizer_dir, num_crops=1, top_k=8)
    rec = record("img", n=1, seed=3)
    rec["path"] = "/photos/cat.jpg"
    [[row]] = rows_of(stage, [rec])
    box = sample_boxes("img", 0, 1, TINY.image, TINY.image)[0]
    repeated = np.repeat(rec["frames"].frames, TINY.frames, axis=0)  # ALPRO: num_frm copies
    crop = tiny.embed_crops(repeated, [(box.left, box.top, box.width, box.height)])
    from vlprep.models.prompter import IMAGE_TEMPLATES

    probs = tiny.soft_labels(crop, tiny.embed_prompts(ENTITIES, IMAGE_TEMPLATES))[0]
    assert row["templates"] == "image" and row["frame_indices"] == [0]
    np.testing.assert_allclose(row["probs"], np.sort(probs)[::-1], rtol=1e-5)


def test_alpro_literal_ignore_rule(tiny, tiny_ckpt, bert_tokenizer_dir):
    records = [record(f"v{i}", seed=i) for i in range(6)]
    stage = stage_for(tiny, tiny_ckpt, bert_tokenizer_dir, ignore_rule="argmax_index",
                      top_k=1, temperature=1e-3)
    rows = [r for video in rows_of(stage, records) for r in video]
    assert all(r["low_confidence"] == (r["entity_ids"][0] == 0) for r in rows)
    assert any(r["top_prob"] > 0.9 and not r["low_confidence"] for r in rows)


def test_wrong_frame_size_is_a_video_error(tiny, tiny_ckpt, bert_tokenizer_dir):
    stage = stage_for(tiny, tiny_ckpt, bert_tokenizer_dir)
    with pytest.raises(VideoError, match="takes 32x32"):
        stage([record("big", size=48)])


def test_prompt_cache_on_disk(tiny, tiny_ckpt, bert_tokenizer_dir, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    stage = stage_for(tiny, tiny_ckpt, bert_tokenizer_dir, prompt_cache=str(cache))
    first = stage.prompt_embeddings("video")
    assert len(list(cache.glob("*.npy"))) == 1
    np.testing.assert_array_equal(first, tiny.embed_prompts(ENTITIES, VIDEO_TEMPLATES))
    # another worker: the text tower never runs, the file is read
    again = stage_for(tiny, tiny_ckpt, bert_tokenizer_dir, prompt_cache=str(cache))
    monkeypatch.setattr(tiny, "embed_texts", lambda texts: pytest.fail("recomputed"))
    np.testing.assert_array_equal(again.prompt_embeddings("video"), first)
    monkeypatch.undo()
    # other entities or other templates: other keys
    other = stage_for(tiny, tiny_ckpt, bert_tokenizer_dir, prompt_cache=str(cache))
    other.entities = ENTITIES[::-1]
    other.prompt_embeddings("video")
    other.prompt_embeddings("image")
    assert len(list(cache.glob("*.npy"))) == 3


def test_alpro_options(tiny_ckpt, bert_tokenizer_dir, tmp_path):
    with pytest.raises(ValidationError, match="needs a tokenizer"):
        PrompterOptions(prompter="alpro", checkpoint=tiny_ckpt)
    with pytest.raises(ValidationError, match="not a file"):
        PrompterOptions(prompter="alpro", checkpoint=str(tmp_path), tokenizer="builtin:demo")
    with pytest.raises(ValidationError, match="prompter: clip or alpro"):
        PrompterOptions(prompter="alpro-vtc", init="random", tokenizer="builtin:demo")
    assert PrompterOptions(prompter="alpro", init="random", tokenizer="builtin:demo").seed == 0
    opts = PrompterOptions(prompter="alpro", checkpoint=tiny_ckpt,
                           tokenizer=str(bert_tokenizer_dir))
    assert (opts.precision, opts.store_full, opts.ignore_rule) == ("fp32", False, "top_prob")


@pytest.mark.slow
def test_full_size_checkpoint_end_to_end(alpro_checkpoint, bert_tokenizer_dir, tmp_path):
    """The released layout at full size, through the stage's own loading, one video."""
    opts = PrompterOptions(prompter="alpro", checkpoint=str(alpro_checkpoint),
                           tokenizer=str(bert_tokenizer_dir), device="cpu", num_crops=2,
                           store_full=True, prompt_cache=str(tmp_path / "cache"))
    stage = PrompterStage(opts, Resources())
    stage.entities = list(ENTITIES)
    rec = record("one", n=4, size=224)
    [rows] = rows_of(stage, [rec])
    assert len(rows) == 2 and all(len(r["probs_full"]) == len(ENTITIES) for r in rows)
    assert all(abs(sum(r["probs_full"]) - 1) < 1e-2 for r in rows)
    p = stage.prompter
    boxes = sample_boxes("one", 0, 2, 224, 224)
    crops = p.embed_crops(rec["frames"].frames, [(b.left, b.top, b.width, b.height)
                                                 for b in boxes])
    probs = p.soft_labels(crops, p.embed_prompts(ENTITIES, VIDEO_TEMPLATES))
    for row, probs_row in zip(rows, probs, strict=True):
        assert row["entity_ids"][0] == int(np.argmax(probs_row))
        np.testing.assert_allclose(row["top_prob"], probs_row.max(), rtol=1e-5)


@pytest.mark.slow
def test_full_size_checkpoint_through_a_job(alpro_checkpoint, bert_tokenizer_dir, tmp_path):
    """texts -> entities -> sample -> prompter: alpro on one real clip, through the runner,
    into the store's soft_labels (ALPRO's 4 headtail frames at 224, masked crops)."""
    import json

    import pyarrow.dataset as pads
    import yaml
    from media import sample_videos

    from vlprep.jobs.config import load_job
    from vlprep.pipeline.runner import run_job

    manifest = tmp_path / "one.jsonl"
    manifest.write_text(json.dumps({
        "video_id": "bikes", "path": str(sample_videos()["bikes"]),
        "caption": "Cyclists ride their bicycles past the camera along a city street."}) + "\n")
    store = tmp_path / "store"
    job = {"name": "alpro-one", "manifest": str(manifest), "store": str(store),
           "ray": {"num_cpus": 2},
           "stages": {
               "texts": {"bert_tokenizer": "builtin:demo"},
               "entities": {},
               "sample": {"sampler": "headtail", "num_frames": 4, "size": 224, "seed": 0},
               "prompter": {"prompter": "alpro", "checkpoint": str(alpro_checkpoint),
                            "tokenizer": str(bert_tokenizer_dir), "device": "cpu",
                            "num_crops": 2, "store_full": True,
                            "prompt_cache": str(tmp_path / "cache")}}}
    (tmp_path / "job.yaml").write_text(yaml.safe_dump(job, sort_keys=False))
    run_job(load_job(str(tmp_path / "job.yaml")), quiet=True)
    entities = pads.dataset(store / "entities", format="parquet").to_table().to_pylist()
    rows = pads.dataset(store / "soft_labels", format="parquet").to_table().to_pylist()
    assert {"cyclist", "bicycle", "camera", "city", "street"} <= {e["lemma"] for e in entities}
    assert len(rows) == 2 and {r["video_id"] for r in rows} == {"bikes"}
    for r in rows:
        assert len(r["frame_indices"]) == 4 and r["templates"] == "video"
        assert len(r["probs_full"]) == len(entities)
        assert r["probs_full"][r["entity_ids"][0]] == max(r["probs_full"])  # fp16 ties
    assert len(list((tmp_path / "cache").glob("*.npy"))) == 1
