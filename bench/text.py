"""Text-side throughput: spaCy, the tokenizers, the texts stage, the entity count, and the
prompters (prompt ensembles and crop scoring): a CLIP prompter, and ALPRO's own (TimeSformer +
BERT, ``prompter: alpro``; set-up = loading prompter_pretrained.pt, then the prompt ensemble
computed, or read from the on-disk cache).

spaCy runs in one process (``nlp.pipe``, no parser or NER) and torch and the tokenizers on one
thread (``--threads``; ``RAYON_NUM_THREADS=1`` for the tokenizers), and times are the
process's CPU seconds, so the figures are per core and hold on a machine shared with others.
The prompters are full size with random weights (speed does not depend on the weights): a
ViT-B/16 CLIP (both towers), and ALPRO's prompter saved in its released key layout.
Sentences are real caption and ASR-style lines, cycled to ``--sentences``. Example:

    .venv/bin/python bench/text.py                       # CPU, demo tokenizers
    .venv/bin/python bench/text.py --bert /models/bert-base-uncased --clip /models/clip-b16
    .venv/bin/python bench/text.py --device cuda --entities 1000
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections.abc import Callable

import numpy as np
import pyarrow as pa
import torch

CAPTIONS = """A man is slicing tomatoes in the kitchen.
Two dogs are running after a ball in the park.
Cyclists ride their bicycles past the camera along a city street.
A woman pours coffee into a white cup on a wooden table.
A large animated rabbit steps out of its burrow in a green forest.
A man sitting in a moving car talks on his phone.
A group of children play football on a sandy beach at sunset.
Someone is mixing flour, eggs and sugar in a glass bowl.
A chef adds chopped onions to a hot pan and stirs them.
A girl with a red hat is playing the guitar on a stage.
Cars drive slowly through heavy traffic on a rainy highway.
A cat jumps onto the sofa and lies down next to a sleeping dog.
so today we're going to show you how to make a simple pasta sauce
first take your knife and cut the garlic into very thin slices
now you want to put the pan on medium heat and add some olive oil
make sure the water is boiling before you add the noodles
and that's it guys thanks for watching and don't forget to subscribe
The cafe owner serves a croissant and an espresso to a customer.
A surfer rides a large wave while people watch from the shore.
An old man feeds pigeons on a bench in the city square.""".splitlines()


def best_of(fn: Callable[[], object], repeats: int, wall: bool = False) -> float:
    """The least CPU time of the process over the repeats: on a machine shared with other
    jobs wall time measures the neighbours; CPU time of one-threaded work is per core. GPU
    work is timed on the wall clock (its results come back to the host, so it has ended)."""
    clock = time.perf_counter if wall else time.process_time
    times = []
    for _ in range(repeats):
        start = clock()
        fn()
        times.append(clock() - start)
    return min(times)


def bench_text(args) -> dict:
    from vlprep.models.spacy_nlp import analyse, load_nlp
    from vlprep.models.tokenizers import bert_ids, clip_tokens, load_tokenizer
    from vlprep.stages.base import OUTPUTS, Resources
    from vlprep.stages.entities import EntitiesOptions, EntitiesStage
    from vlprep.stages.texts import TextsOptions, TextsStage

    texts = [CAPTIONS[i % len(CAPTIONS)] for i in range(args.sentences)]
    nlp = load_nlp(args.spacy_model)
    bert = load_tokenizer(args.bert, "bert")
    clip = load_tokenizer(args.clip, "clip")
    analyse(nlp, texts[:64])  # warm-up
    out = {"sentences": len(texts), "mean_chars": float(np.mean([len(t) for t in texts]))}
    out["spacy_sentences_per_s"] = len(texts) / best_of(
        lambda: analyse(nlp, texts, args.spacy_batch), args.repeats)
    out["bert_ids_per_s"] = len(texts) / best_of(lambda: bert_ids(bert, texts), args.repeats)
    out["clip_ids_per_s"] = len(texts) / best_of(lambda: clip_tokens(clip, texts), args.repeats)
    stage = TextsStage(TextsOptions(bert_tokenizer=args.bert, clip_tokenizer=args.clip,
                                    spacy_model=args.spacy_model), Resources())
    stage.setup()
    per_video = 8

    def run_stage() -> list[dict]:
        records = [{"video_id": f"v{i}", "partition": 0,
                    "captions": texts[i:i + per_video]} for i in range(0, len(texts), per_video)]
        return stage(records)

    out["texts_stage_rows_per_s"] = len(texts) / best_of(run_stage, args.repeats)
    table = pa.concat_tables([r[OUTPUTS]["texts"] for r in run_stage()])
    entities = EntitiesStage(EntitiesOptions(), Resources())
    source = table.select(list(entities.columns))
    out["entity_partial_rows_per_s"] = table.num_rows / best_of(
        lambda: entities.partial(source), args.repeats)
    return out


def bench_prompter(args) -> dict:
    from vlprep.models.clip import resolve_device
    from vlprep.models.prompter import (
        VIDEO_TEMPLATES,
        ClipPrompter,
        prompt_embeddings,
        random_clip_model,
    )
    from vlprep.models.tokenizers import load_tokenizer
    from vlprep.stages.crops import crop_view, sample_boxes

    logging.getLogger("vlprep").setLevel(logging.ERROR)
    device = resolve_device(args.device)
    tokenizer = load_tokenizer(args.clip, "clip")
    model = random_clip_model(tokenizer, 0)  # ViT-B/16 vision + CLIP-B text, full size
    prompter = ClipPrompter(model, tokenizer, device, batch_size=args.frame_batch)
    words = sorted({w.strip(".,'").lower() for t in CAPTIONS for w in t.split()})
    entities = [words[i % len(words)] + ("" if i < len(words) else str(i))
                for i in range(args.entities)]
    prompts = len(entities) * len(VIDEO_TEMPLATES)
    prompter.embed_texts(["warm up"] * 4)
    wall = device.type == "cuda"
    seconds = best_of(lambda: prompt_embeddings(prompter, entities, VIDEO_TEMPLATES), 1, wall)
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, (args.frames, 224, 224, 3), dtype=np.uint8)
              for _ in range(args.videos)]

    def score() -> np.ndarray:
        views = [crop_view(v, b, "masked", 224) for i, v in enumerate(videos)
                 for b in sample_boxes(f"v{i}", 0, args.crops, 224, 224)]
        return prompter.embed_images(np.concatenate(views))

    prompter.embed_images(videos[0][:2])
    crop_seconds = best_of(score, args.repeats, wall)
    images = args.videos * args.crops * args.frames
    return {"device": str(device), "entities": len(entities), "prompts": prompts,
            "prompt_ensemble_s": seconds, "prompts_per_s": prompts / seconds,
            "crop_images_per_s": images / crop_seconds,
            "videos_per_s": args.videos / crop_seconds,
            "crops_x_frames_per_video": args.crops * args.frames}


def bench_alpro(args) -> dict:
    """ALPRO's prompter: load a full-size file in the released layout, build the prompt
    ensemble (cold, then from the cache), and score crops (each crop: a 4-frame video)."""
    import tempfile
    from pathlib import Path

    from vlprep.models.alpro import AlproPrompter, mask_outside
    from vlprep.models.alpro_checkpoint import released_name
    from vlprep.models.clip import resolve_device
    from vlprep.models.prompt_cache import cache_key, cached, vocabulary_digest
    from vlprep.models.prompter import VIDEO_TEMPLATES
    from vlprep.models.tokenizers import load_tokenizer
    from vlprep.stages.crops import sample_boxes

    logging.getLogger("vlprep").setLevel(logging.ERROR)
    device = resolve_device(args.device)
    wall = device.type == "cuda"
    tokenizer = load_tokenizer(args.bert, "bert")
    random = AlproPrompter.random(tokenizer, 0)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "prompter_pretrained.pt"
        torch.save({released_name(k): v for k, v in random.model.state_dict().items()}, path)
        del random
        start = time.perf_counter()
        prompter = AlproPrompter.from_checkpoint(path, tokenizer=args.bert, device=str(device),
                                                 precision=args.alpro_precision)
        prompter.embed_texts(["warm up"])
        load_s = time.perf_counter() - start
        start = time.perf_counter()
        sha = prompter.sha256
        sha_s = time.perf_counter() - start
        entities = [f"{CAPTIONS[i % len(CAPTIONS)].split()[1].lower()}{i}"
                    for i in range(args.entities)]
        key = cache_key(sha, entities, VIDEO_TEMPLATES, tokenizer=vocabulary_digest(tokenizer))
        cold_s = best_of(lambda: cached(Path(tmp) / "cache", key, lambda: prompter.embed_prompts(
            entities, VIDEO_TEMPLATES)), 1, wall)  # CPU seconds on CPU, as the rows above
        start = time.perf_counter()
        cached(Path(tmp) / "cache", key, lambda: None)  # type: ignore[arg-type, return-value]
        warm_s = time.perf_counter() - start
    rng = np.random.default_rng(0)
    videos = [rng.integers(0, 256, (4, 224, 224, 3), dtype=np.uint8)
              for _ in range(args.alpro_videos)]
    boxes = [[(b.left, b.top, b.width, b.height) for b in sample_boxes(f"v{i}", 0, args.crops,
                                                                       224, 224)]
             for i in range(len(videos))]
    prompter.embed_crops(videos[0], boxes[0][:1])  # warm-up

    def score() -> None:
        prompter.embed_videos(np.stack([mask_outside(v, b)
                                        for v, bs in zip(videos, boxes, strict=True)
                                        for b in bs]))

    crop_s = best_of(score, args.repeats, wall)
    crops = len(videos) * args.crops
    prompts = len(entities) * len(VIDEO_TEMPLATES)
    return {"device": str(device), "precision": args.alpro_precision,
            "load_wall_s": load_s, "sha256_wall_s": sha_s, "prompts": prompts,
            "prompt_ensemble_cold_s": cold_s, "prompts_per_s": prompts / cold_s,
            "prompt_ensemble_cached_s": warm_s, "crops": crops,
            "crops_per_s": crops / crop_s, "crop_timing": "wall" if wall else "cpu"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sentences", type=int, default=2000)
    parser.add_argument("--spacy-model", default="en_core_web_sm")
    parser.add_argument("--spacy-batch", type=int, default=256)
    parser.add_argument("--bert", default="builtin:demo", help="BERT tokenizer dir")
    parser.add_argument("--clip", default="builtin:demo", help="CLIP tokenizer dir")
    parser.add_argument("--entities", type=int, default=200, help="ALPRO uses 1,000")
    parser.add_argument("--videos", type=int, default=4)
    parser.add_argument("--crops", type=int, default=4)
    parser.add_argument("--frames", type=int, default=4)
    parser.add_argument("--frame-batch", type=int, default=64)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (CPU)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-prompter", action="store_true")
    parser.add_argument("--alpro-videos", type=int, default=1, help="ALPRO: videos of 4 "
                        "frames, --crops crops each (CPU: about 5 s a crop)")
    parser.add_argument("--alpro-precision", default="fp32", choices=["fp32", "fp16", "bf16"])
    parser.add_argument("--skip-alpro", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    logging.getLogger("vlprep").setLevel(logging.ERROR)
    result = {"text": bench_text(args)}
    if not args.skip_prompter:
        result["prompter"] = bench_prompter(args)
    if not args.skip_alpro:
        result["alpro_prompter"] = bench_alpro(args)
    if args.json:
        print(json.dumps(result, indent=1))
        return
    for section, values in result.items():
        print(f"[{section}]")
        for key, value in values.items():
            print(f"  {key:28s} {value:,.1f}" if isinstance(value, float)
                  else f"  {key:28s} {value}")


if __name__ == "__main__":
    main()
