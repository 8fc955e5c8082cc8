"""STOA-VLP: RoIAlign on patch tokens, Hungarian matching, action queries, the losses."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from train_fake_store import write_store

from vlprep.train.loop import make_loader, train
from vlprep.train.losses import hungarian_pairs, matched_mse
from vlprep.train.method import TrainConfig
from vlprep.train.stoa import Stoa, roi_features
from vlprep.train.store_reader import StoreReader

TINY = {"dim": 32, "heads": 2, "layers": 1, "text_layers": 1, "max_objects": 3}


def test_roi_features_pool_the_boxed_cells():
    grid = np.zeros((1, 16, 2), np.float32)  # one frame, 4 x 4 cells, 2 channels
    grid[0, :, 0] = np.arange(16)
    grid[0, :, 1] = 1.0
    whole = roi_features(grid, np.array([[0, 0, 0, 64, 64]]), (4 / 64, 4 / 64), 2)
    assert np.allclose(whole[0], [7.5, 1.0], atol=0.3)
    cell = roi_features(grid, np.array([[0, 16, 16, 32, 32]]), (4 / 64, 4 / 64), 1)
    assert np.allclose(cell[0], [5.0, 1.0], atol=1e-4)  # the cell in row 1, column 1
    wide = roi_features(grid, np.array([[0, 0, 0, 64, 32]]), (4 / 64, 4 / 32), 1)
    assert np.allclose(wide[0], [7.5, 1.0], atol=0.6)  # x and y scaled apart
    assert roi_features(grid, np.zeros((0, 5)), (1, 1), 2).shape == (0, 2)


def test_hungarian_matching_is_the_best_assignment():
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = torch.tensor(rng.normal(size=(3, 4)), dtype=torch.float32)
        t = torch.tensor(rng.normal(size=(5, 4)), dtype=torch.float32)
        rows, cols = hungarian_pairs(q, t)
        scores = (q @ t.t()).softmax(-1).numpy()
        best = max(sum(scores[r, c] for r, c in zip(range(3), perm, strict=True))
                   for perm in itertools.permutations(range(5), 3))
        assert len(set(cols)) == 3 and np.isclose(scores[rows, cols].sum(), best)


def test_matched_mse_trains_queries_not_targets():
    q = [torch.zeros(2, 3, requires_grad=True), torch.zeros(0, 3, requires_grad=True)]
    t = [torch.ones(4, 3, requires_grad=True), torch.ones(2, 3, requires_grad=True)]
    loss = matched_mse(q, t)
    loss.backward()
    assert float(loss.detach()) == pytest.approx(1.0)
    assert q[0].grad is not None and t[0].grad is None  # the text side is the teacher
    empty = matched_mse([torch.zeros(0, 3, requires_grad=True)], [torch.ones(2, 3)])
    assert float(empty.detach()) == 0.0


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    return write_store(tmp_path_factory.mktemp("stoa") / "store", 32, partition_size=16,
                       tables=("clip_frames", "texts", "trajectories"), grid=4)


def test_samples_carry_objects_patches_and_tags(store, tmp_path):
    method = Stoa(StoreReader(str(store)), TINY)
    assert method.facts["vocab"]["column"] == "clip_ids" and not method.facts["regions"]
    cfg = TrainConfig(store=str(store), out=str(tmp_path), batch_size=4, quiet=True)
    batch = next(iter(make_loader(method, cfg, "train", 0)))
    assert batch["patches"].shape == (4, 4, 16, 8)
    assert batch["objects"].shape == (4, 1, 4, 8) and batch["present"].all()
    assert batch["frame_objects"].shape == (4, 4, 3, 8)
    assert batch["object_mask"][:, :, 0].all() and not batch["object_mask"][:, :, 1:].any()
    assert (batch["pos"] == 1).sum() == 4 and (batch["pos"] == 2).sum() == 4
    model = method.build_model()
    terms = method.losses(model, batch)
    assert {"vtc", "nouns", "verbs", "loss"} <= terms.keys()
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    assert model.queries.grad is not None and model.traj_cls.grad is not None


def test_action_queries_ignore_masked_objects(store):
    model = Stoa(StoreReader(str(store)), TINY).build_model().eval()
    b, f, p, k, h = 2, 3, 4, 2, 8
    patches = torch.randn(b, f, p, h)
    objects = torch.randn(b, f, k, h)
    mask = torch.zeros(b, f, k, dtype=torch.bool)
    frames = torch.randn(b, f, 32)
    fmask = torch.ones(b, f, dtype=torch.bool)
    a = model.action_tokens(patches, objects, mask, frames, fmask)
    b2 = model.action_tokens(patches, objects * 100, mask, frames, fmask)
    assert a.shape == (2, 4, 32) and torch.allclose(a, b2, atol=1e-5)


def test_stoa_trains_and_evaluates(store, tmp_path):
    cfg = TrainConfig(store=str(store), out=str(tmp_path / "run"), epochs=2, batch_size=8,
                      lr=2e-3, quiet=True, eval_fraction=0.25, options=TINY)
    result = train(Stoa(StoreReader(cfg.store), cfg.options), cfg)
    assert result["eval"]["queries"] > 0 and 0 <= result["eval"]["R@1"] <= 100


def test_stoa_needs_patch_tokens_and_trajectories(tmp_path):
    from vlprep.store import StoreError

    no_traj = write_store(tmp_path / "a", 4)
    with pytest.raises(StoreError, match="no trajectories table"):
        Stoa(StoreReader(str(no_traj)), {})
