"""VideoCLIP: MMPT's overlapped clip sampling, and retrieval-augmented batches that are
measurably harder than random ones."""

from __future__ import annotations

import random

import numpy as np
import pytest
from train_fake_store import write_store

from vlprep.train.loop import make_loader, train
from vlprep.train.method import TrainConfig
from vlprep.train.metrics import MetricsLog
from vlprep.train.retrieval_batches import build_index, random_groups, retrieval_groups
from vlprep.train.store_reader import StoreReader
from vlprep.train.videoclip import VideoClip
from vlprep.train.videoclip_clips import ClipParams, Line, overlapped_clip, text_span, video_span

TINY = {"dim": 32, "heads": 2, "layers": 1, "text_layers": 1, "candidates": 16,
        "vector_clips": 1, "clips_per_video": 1}


def _lines(n: int, tokens: int = 3, seconds: float = 2.0) -> list[Line]:
    return [Line(i * seconds, (i + 1) * seconds, tuple(range(tokens))) for i in range(n)]


def test_text_span_grows_around_the_centre_to_the_budget():
    rng = random.Random(0)
    lines = _lines(30)
    for _ in range(200):
        centre, budget = rng.randrange(30), rng.randint(8, 64)
        span = text_span(lines, centre, budget, rng)
        assert centre in span and span == list(range(span[0], span[-1] + 1))
        tokens = 3 * len(span)
        assert tokens >= min(budget, 90) and tokens - 3 < budget  # stops once over budget
    assert text_span(_lines(1), 0, 64, rng) == [0]


def test_video_span_grows_one_second_at_a_time_within_the_video():
    rng = random.Random(1)
    for _ in range(200):
        n = rng.randint(1, 60)
        centre, length = rng.randrange(n), rng.randint(3, 32)
        start, end = video_span(n, length, centre, rng)
        assert 0 <= start <= centre <= end <= n
        assert end - start == min(length, n)
    with pytest.raises(ValueError):
        video_span(5, 3, 5, rng)


def test_overlapped_clips_overlap_their_text():
    rng = random.Random(2)
    params = ClipParams()
    lines = _lines(40, tokens=4, seconds=3.0)
    lengths, same_ends = set(), 0
    for _ in range(300):
        clip = overlapped_clip(lines, 120, rng, params)
        assert params.min_video_seconds <= clip.end - clip.start <= params.max_video_seconds
        assert 1 <= len(clip.ids) <= params.max_text_tokens
        text_start, text_end = lines[clip.lines[0]].start, lines[clip.lines[-1]].end
        assert clip.start <= text_end and clip.end >= text_start  # they overlap
        same_ends += (clip.start, clip.end) == (text_start, text_end)
        lengths.add(clip.end - clip.start)
    assert len(lengths) > 10  # lengths are drawn, not fixed
    assert same_ends < 30  # and rarely the text's own span


def test_retrieval_groups_are_a_seed_and_its_neighbours():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(10, 8)) * 5
    vectors = np.concatenate([c + rng.normal(size=(30, 8)) * 0.1 for c in centres])
    index = build_index(vectors)  # 300 points: IVF with 7 lists
    assert type(index).__name__ == "IndexIVFFlat"
    groups = retrieval_groups(vectors, 8, 16, random.Random(0), index)
    assert len(groups) == 300 // 8  # MMPT: len(video_ids) // num_video_per_batch seeds
    for group in groups:
        assert len(group) == len(set(group)) == 8
        assert len({i // 30 for i in group}) == 1  # all from the seed's cluster
    flat = retrieval_groups(vectors[:50], 8, 16, random.Random(0))
    assert all(len(g) == 8 for g in flat)
    shuffled = random_groups(300, 8, random.Random(0))
    assert sorted(i for g in shuffled for i in g) == list(range(300))


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("vc") / "store", 192, partition_size=64,
                       tables=("s3d", "texts"), labels=12, seconds=8)


def test_retrieval_batches_are_harder_than_random_ones(store, tmp_path):
    """After a little training, batches of neighbours (same label, same text) confuse the
    model; random batches (mixed labels) do not: higher loss, worse positive rank."""
    cfg = TrainConfig(store=str(store), out=str(tmp_path / "run"), epochs=5, batch_size=16,
                      lr=3e-3, eval_fraction=0.2, quiet=True,
                      options={**TINY, "batching": "retrieval"})
    method = VideoClip(StoreReader(cfg.store), cfg.options)
    result = train(method, cfg)
    assert result["eval"]["R@5"] > 3 * 5 * result["eval"]["chance_R@1"]  # it learned
    records = [r for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").records()
               if r["kind"] == "batches"]
    assert [r["epoch"] for r in records] == [0, 1, 2, 3, 4]
    last = records[-1]  # the start of the last epoch: a model that tells labels apart
    assert last["batches_loss"] > last["random_loss"] + 0.3, last
    assert last["batches_rank"] > last["random_rank"] + 1.0, last

    # and directly, on one pool, with the trained model
    from vlprep.train import checkpoint

    model = method.build_model()
    checkpoint.load_weights(model, checkpoint.resolve(tmp_path / "run"))
    method.loader_batch_size(16)
    pool = list(make_loader(method, cfg, "train", epoch=6))
    rng = random.Random(0)
    hard = method.difficulty(pool, method.groups(pool, model, rng), model)
    easy = method.difficulty(pool, random_groups(len(pool), 16, rng), model)
    assert hard["loss"] > easy["loss"] and hard["rank"] > easy["rank"]


def test_random_batching_logs_equal_difficulty(store, tmp_path):
    cfg = TrainConfig(store=str(store), out=str(tmp_path / "run"), epochs=1, batch_size=16,
                      eval_fraction=0.2, quiet=True, options={**TINY, "batching": "random"})
    train(VideoClip(StoreReader(cfg.store), cfg.options), cfg)
    record = next(r for r in MetricsLog(tmp_path / "run" / "metrics.jsonl").records()
                  if r["kind"] == "batches")
    assert record["batching"] == "random"
    assert abs(record["batches_loss"] - record["random_loss"]) < 0.5


def test_unknown_batching_is_refused(store):
    method = VideoClip(StoreReader(str(store)), {"batching": "nearest"})
    with pytest.raises(ValueError, match="batching 'nearest'"):
        method.groups([{}] * 100, None, random.Random(0))  # type: ignore[arg-type]


def test_mmpt_batch_defaults():
    """how2.yaml: 32 videos per batch (--batch-size), 16 clips of each (clip_per_video), drawn
    from the seed and its 64 nearest (num_cands); FAISS's default nprobe (retri.py sets
    none); the retrieval vector averages the same 16 clips."""
    from vlprep.train.videoclip import VideoClipOptions

    o = VideoClipOptions()
    assert (o.clips_per_video, o.candidates, o.nprobe, o.vector_clips, o.ivf_lists) == (
        16, 64, 1, 16, 512)
    assert VideoClip.videos_per_batch == VideoClip.default_batch_size == 32


def test_a_batch_holds_clips_per_video_clips_of_each_video(store):
    method = VideoClip(StoreReader(str(store)), {**TINY, "clips_per_video": 3,
                                                 "batching": "random"})
    cfg = TrainConfig(store=str(store), out="unused", eval_fraction=0.2, quiet=True)
    pool = list(make_loader(method, cfg, "train", epoch=0))[:8]
    method.loader_batch_size(4)
    model = method.build_model()
    batches = list(method.pool_batches(pool, model, random.Random(0)))
    assert len(batches) == 2 and all(b["video"].shape[0] == 4 * 3 for b in batches)


def test_a_probe_that_finds_too_few_widens():
    """nprobe 1 (MMPT) on lists smaller than a batch: the probe widens until every seed has
    enough neighbours, so batches stay full and come from the nearest lists."""
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(10, 8)) * 20
    vectors = np.concatenate([c + rng.normal(size=(40, 8)) for c in centres]).astype(np.float32)
    index = build_index(vectors, lists=10, nprobe=1)
    assert index.nprobe == 1 and index.nlist == 10
    _, one_list = index.search(vectors[:50], 64)
    assert ((one_list >= 0).sum(1) < 48).any()  # one probed list is not enough for 48
    groups = retrieval_groups(vectors, 48, 64, random.Random(0), index)
    assert index.nprobe == 1  # restored after widening
    assert len(groups) == 400 // 48 and all(len(set(g)) == 48 for g in groups)
    seeds = random.Random(0).sample(range(400), 400 // 48)
    for seed, group in zip(seeds, groups, strict=True):
        clusters = [i // 40 for i in group]
        assert clusters.count(seed // 40) >= 48 - 24  # mostly the seed's own cluster
        assert len(set(clusters)) <= 3  # and a neighbouring one or two, not random videos
