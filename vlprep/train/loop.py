"""The training loop every method shares: seeds, loader, optimizer, logs, checkpoints, eval.

Reproducible: the model is built under ``seed``, and every epoch reseeds torch and the data
order from (seed, epoch), so a run resumed from the checkpoint of epoch k continues exactly
as the uninterrupted run would (on CPU; GPU kernels may differ in the last bits).
"""

from __future__ import annotations

import logging
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from torch.utils.data import DataLoader

from vlprep.train import checkpoint
from vlprep.train.data import Split, StoreDataset
from vlprep.train.method import Method, TrainConfig, resolve_device, to_device
from vlprep.train.metrics import MetricsLog, retrieval_metrics

log = logging.getLogger("vlprep")


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_loader(method: Method, cfg: TrainConfig, split: Split, epoch: int,
                batch_size: int | None = None, train: bool | None = None) -> DataLoader:
    """Training samples (shuffled) of the train split by default; evaluation pairs (in
    store order) of any split with ``train=False``."""
    train = split == "train" if train is None else train
    dataset = StoreDataset(
        cfg.store, method.read_spec() if train else method.eval_read_spec(),
        method.train_samples if train else method.eval_samples, split=split,
        eval_fraction=cfg.eval_fraction, split_seed=cfg.split_seed, seed=cfg.seed,
        shuffle=train, shuffle_buffer=cfg.shuffle_buffer)
    dataset.set_epoch(epoch)
    size = method.loader_batch_size(batch_size or cfg.batch_size) if train \
        else (batch_size or cfg.batch_size)
    collate = (method.collate if train else method.eval_collate) if size is not None \
        else _as_is
    return DataLoader(dataset, batch_size=size, collate_fn=collate, num_workers=cfg.workers,
                      drop_last=False)


def _as_is(sample: Any) -> Any:
    """Unbatched loading: samples reach the method untouched (no tensor conversion)."""
    return sample


@torch.no_grad()
def evaluate(method: Method, model: torch.nn.Module, cfg: TrainConfig,
             split: Split = "eval") -> dict[str, Any]:
    """Text-to-video retrieval over `split`: every video's query text against all videos."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    texts, videos = [], []
    for batch in make_loader(method, cfg, split, epoch=0, train=False):
        t, v = method.encode_eval(model, to_device(batch, device))
        texts.append(t.float().cpu())
        videos.append(v.float().cpu())
    model.train(was_training)
    if not texts:
        return {"queries": 0}
    return retrieval_metrics(method.similarity(torch.cat(texts), torch.cat(videos)))


def _lr_at(step: int, epoch: int, cfg: TrainConfig) -> float:
    """Linear warm-up over the first steps, then a cosine decay by epoch (per epoch, so a
    resumed run gets the same rates without knowing how many steps an epoch has)."""
    warm = min(1.0, (step + 1) / max(1, cfg.warmup_steps))
    return cfg.lr * warm * 0.5 * (1 + math.cos(math.pi * epoch / max(1, cfg.epochs)))


def _progress(cfg: TrainConfig) -> Progress | None:
    if cfg.quiet:
        return None
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]:.4f}"), TimeElapsedColumn())


def train(method: Method, cfg: TrainConfig) -> dict[str, Any]:
    """Train `method` on cfg.store into cfg.out; returns the last evaluation and paths."""
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    device = resolve_device(cfg.device)
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    seed_everything(cfg.seed)
    model = method.build_model().to(device)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad],
                                  lr=cfg.lr, weight_decay=cfg.weight_decay)
    metrics = MetricsLog(out / "metrics.jsonl")
    meta = {**method.meta(), "train": cfg.to_dict()}
    start_epoch, step = 0, 0
    found = checkpoint.latest(out) if cfg.resume else None
    if found is not None:
        if found.meta.get("method") != method.name:
            raise ValueError(f"{out} holds a {found.meta.get('method')} run, not {method.name}")
        for part in ("options", "facts"):
            if found.meta.get(part) != meta[part]:
                raise ValueError(f"{out} holds a run with other {part} ({part} of the method "
                                 "or of the store): pass --no-resume, or another --out")
        checkpoint.load_training(found, model, optimizer)
        start_epoch, step = found.epoch + 1, found.step
        metrics.truncate_after(found.epoch)
        log.info("resuming %s after epoch %d (step %d)", method.name, found.epoch, step)
    else:  # a fresh run: nothing of an earlier one in this folder may be resumed later
        metrics.truncate_after(-1)
        (out / checkpoint.LAST).unlink(missing_ok=True)
    last_eval: dict[str, Any] = {}
    for epoch in range(start_epoch, cfg.epochs):
        seed_everything(cfg.seed * 1_000_003 + epoch)
        model.train()
        step, mean_loss = _run_epoch(method, model, optimizer, cfg, epoch, step, metrics,
                                     device)
        last_eval = evaluate(method, model, cfg) if cfg.eval_fraction > 0 else {}
        metrics.write({"kind": "eval", "epoch": epoch, "step": step, "train_loss": mean_loss,
                       **last_eval})
        checkpoint.save(out, epoch, step, model, optimizer, meta)
        if not cfg.quiet:
            shown = ", ".join(f"{k} {v:.2f}" for k, v in last_eval.items()
                              if k in ("R@1", "R@5", "R@10", "MdR", "chance_R@1"))
            log.info("epoch %d: loss %.4f %s", epoch, mean_loss, shown)
    if start_epoch >= cfg.epochs and cfg.eval_fraction > 0:  # resumed a finished run
        last_eval = evaluate(method, model, cfg)
    extras = method.after_training(model, out)
    return {"out": str(out), "epochs": cfg.epochs, "step": step, "eval": last_eval, **extras}


def _run_epoch(method: Method, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               cfg: TrainConfig, epoch: int, step: int, metrics: MetricsLog,
               device: torch.device) -> tuple[int, float]:
    loader = make_loader(method, cfg, "train", epoch)
    progress = _progress(cfg)
    task = progress.add_task(f"epoch {epoch}", total=None, loss=0.0) if progress else None
    if progress:
        progress.start()
    total, count, started = 0.0, 0, time.monotonic()
    try:
        for batch in method.train_batches(loader, model, epoch):
            batch = to_device(batch, device)
            for group in optimizer.param_groups:
                group["lr"] = _lr_at(step, epoch, cfg)
            terms = method.losses(model, batch)
            optimizer.zero_grad(set_to_none=True)
            terms["loss"].backward()
            if cfg.grad_clip > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            optimizer.step()
            values = {k: float(v.detach()) for k, v in terms.items()}
            total, count, step = total + values["loss"], count + 1, step + 1
            if step % cfg.log_every == 0:
                metrics.write({"kind": "train", "epoch": epoch, "step": step,
                               "lr": optimizer.param_groups[0]["lr"], **values})
            if progress is not None and task is not None:
                progress.update(task, advance=1, loss=values["loss"])
    finally:
        if progress is not None:
            progress.stop()
    if count == 0:
        raise ValueError(f"store {cfg.store}: no training samples for {method.name} (no video "
                         "has the rows it needs in the train split)")
    for record in method.epoch_records():
        metrics.write({"epoch": epoch, "step": step, **record})
    metrics.write({"kind": "epoch", "epoch": epoch, "step": step, "loss": total / count,
                   "batches": count, "seconds": round(time.monotonic() - started, 3)})
    return step, total / count
