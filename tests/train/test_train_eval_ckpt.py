"""Retrieval metrics, the metrics log, safetensors checkpoints and exact resuming."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from train_fake_store import write_store

from vlprep.train import checkpoint
from vlprep.train.alpro import Alpro
from vlprep.train.loop import train
from vlprep.train.method import TrainConfig
from vlprep.train.metrics import MetricsLog, ranks, retrieval_metrics
from vlprep.train.store_reader import StoreReader

TINY = {"dim": 32, "embed_dim": 16, "heads": 2, "layers": 1, "text_layers": 1}


def test_ranks_and_recalls():
    sim = np.array([[0.9, 0.1, 0.0, 0.0],    # right video first
                    [0.5, 0.4, 0.0, 0.0],    # second
                    [0.3, 0.2, 0.1, 0.9],    # fourth
                    [0.0, 0.0, 0.0, 0.0]])   # a tie with everything: last, not first
    assert ranks(sim).tolist() == [1, 2, 4, 4]
    m = retrieval_metrics(sim)
    assert m["R@1"] == 25.0 and m["R@5"] == 100.0 and m["MdR"] == 3.0 and m["MnR"] == 2.75
    assert m["chance_R@1"] == 25.0 and m["queries"] == 4
    assert retrieval_metrics(torch.eye(10))["R@1"] == 100.0
    assert retrieval_metrics(np.zeros((10, 10)))["R@1"] == 0.0  # a constant scorer gets 0


def test_metrics_log_truncates_on_resume(tmp_path):
    log = MetricsLog(tmp_path / "m.jsonl")
    for epoch in range(3):
        log.write({"kind": "epoch", "epoch": epoch, "loss": float("nan") if epoch else 1.0})
    log.truncate_after(1)
    records = log.records()
    assert [r["epoch"] for r in records] == [0, 1] and records[1]["loss"] is None


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("s") / "store", 48, partition_size=16)


def _cfg(store, out, epochs, **kw):
    return TrainConfig(store=str(store), out=str(out), epochs=epochs, batch_size=8, lr=1e-3,
                       quiet=True, options=dict(TINY), **kw)


def _train(store, out, epochs, **kw):
    cfg = _cfg(store, out, epochs, **kw)
    return train(Alpro(StoreReader(cfg.store), cfg.options), cfg)


def test_checkpoints_are_safetensors_with_their_config(store, tmp_path):
    result = _train(store, tmp_path / "run", 2)
    last = checkpoint.latest(tmp_path / "run")
    assert last is not None and last.epoch == 1 and last.folder.name == "epoch-0001"
    weights = load_file(str(last.folder / "model.safetensors"))
    assert any(k.startswith("text.") for k in weights)
    meta = checkpoint.read_meta(last.folder / "model.safetensors")
    assert meta["method"] == "alpro" and meta["options"]["dim"] == 32
    assert meta["facts"]["vocab"]["column"] == "bert_ids"
    assert (last.folder / "optimizer.safetensors").exists()
    records = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    evals = [r for r in records if r["kind"] == "eval"]
    assert [r["epoch"] for r in evals] == [0, 1] and evals[-1]["R@1"] == result["eval"]["R@1"]
    assert all("R@5" in r and "MdR" in r for r in evals)


def test_resume_continues_exactly(store, tmp_path, monkeypatch):
    """A run killed after epoch 1 and started again equals the uninterrupted run bit for bit
    (same command, so the same epoch count and learning-rate schedule)."""
    _train(store, tmp_path / "straight", 3)
    real_save = checkpoint.save

    def save_then_crash(out, epoch, *args, **kwargs):
        folder = real_save(out, epoch, *args, **kwargs)
        if epoch == 1:
            raise KeyboardInterrupt("killed after epoch 1")
        return folder

    monkeypatch.setattr(checkpoint, "save", save_then_crash)
    with pytest.raises(KeyboardInterrupt):
        _train(store, tmp_path / "resumed", 3)
    monkeypatch.setattr(checkpoint, "save", real_save)
    _train(store, tmp_path / "resumed", 3)  # picks up after epoch 1
    a = load_file(str(checkpoint.resolve(tmp_path / "straight")))
    b = load_file(str(checkpoint.resolve(tmp_path / "resumed")))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    epochs = [r["epoch"] for r in MetricsLog(tmp_path / "resumed" / "metrics.jsonl").records()
              if r["kind"] == "epoch"]
    assert epochs == [0, 1, 2]


def test_no_resume_starts_over(store, tmp_path):
    _train(store, tmp_path / "run", 1)
    first = load_file(str(checkpoint.resolve(tmp_path / "run")))
    _train(store, tmp_path / "run", 1, seed=5, resume=False)
    second = load_file(str(checkpoint.resolve(tmp_path / "run")))
    assert not all(torch.equal(first[k], second[k]) for k in first)
    assert len(MetricsLog(tmp_path / "run" / "metrics.jsonl").records()) >= 1


def test_seed_makes_runs_identical(store, tmp_path):
    _train(store, tmp_path / "a", 1, seed=7)
    _train(store, tmp_path / "b", 1, seed=7)
    a = load_file(str(checkpoint.resolve(tmp_path / "a")))
    b = load_file(str(checkpoint.resolve(tmp_path / "b")))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_optimizer_state_round_trips():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(model.parameters(), lr=0.1)
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    tensors, rest = checkpoint.flatten_optimizer(opt.state_dict())
    back = checkpoint.unflatten_optimizer(tensors, json.loads(json.dumps(rest)))
    fresh = torch.optim.AdamW(torch.nn.Linear(3, 2).parameters(), lr=0.5)
    fresh.load_state_dict(back)
    assert fresh.param_groups[0]["lr"] == 0.1
    assert torch.equal(fresh.state_dict()["state"][0]["exp_avg"],
                       opt.state_dict()["state"][0]["exp_avg"])


def test_resolve_finds_the_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        checkpoint.resolve(tmp_path)


def test_resume_refuses_other_options_and_reports_a_finished_run(store, tmp_path):
    first = _train(store, tmp_path / "run", 1)
    again = _train(store, tmp_path / "run", 1)  # nothing left to train: evaluates
    assert again["eval"]["R@1"] == first["eval"]["R@1"]
    cfg = _cfg(store, tmp_path / "run", 2)
    cfg.options["dim"] = 48
    with pytest.raises(ValueError, match="other options"):
        train(Alpro(StoreReader(cfg.store), cfg.options), cfg)
