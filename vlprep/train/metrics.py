"""Retrieval metrics (the MSR-VTT protocol) and the metrics log.

Text-to-video retrieval: each query text has exactly one right video, the one it was
written for; R@K is the share of texts whose video ranks in the top K, MdR the median rank
(1 = first). Ties count against the query (a video scored equal to the right one ranks
ahead of it), so a constant scorer cannot look good.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch


def ranks(similarity: torch.Tensor | np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of the right video for each text; `similarity` is texts x videos and
    `targets[i]` the right column of text i (default: the diagonal)."""
    sim = similarity.detach().float().cpu().numpy() if torch.is_tensor(similarity) \
        else np.asarray(similarity, dtype=np.float64)
    n_text = sim.shape[0]
    targets = np.arange(n_text) if targets is None else np.asarray(targets)
    right = sim[np.arange(n_text), targets][:, None]
    return (sim >= right).sum(axis=1)  # the right video itself counts once


def retrieval_metrics(similarity: torch.Tensor | np.ndarray,
                      targets: np.ndarray | None = None) -> dict[str, float]:
    """R@1/5/10 (in %), median and mean rank, the query count and the chance R@1 (in %)."""
    r = ranks(similarity, targets)
    n_video = similarity.shape[1]
    return {
        "R@1": float(100 * np.mean(r <= 1)),
        "R@5": float(100 * np.mean(r <= 5)),
        "R@10": float(100 * np.mean(r <= 10)),
        "MdR": float(np.median(r)),
        "MnR": float(np.mean(r)),
        "queries": int(len(r)),
        "videos": int(n_video),
        "chance_R@1": float(100 / max(1, n_video)),
    }


class MetricsLog:
    """Append-only JSONL of training and evaluation records, trimmed on resume so that a
    resumed run's log reads as one uninterrupted run."""

    def __init__(self, path: Path):
        self.path = path
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        clean = {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                 for k, v in record.items()}
        with self.path.open("a") as f:
            f.write(json.dumps({"time": round(time.time(), 3), **clean}) + "\n")

    def truncate_after(self, epoch: int) -> None:
        """Drop records of epochs after `epoch` (the last one a checkpoint holds)."""
        if not self.path.exists():
            return
        keep = [line for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line).get("epoch", -1) <= epoch]
        self.path.write_text("".join(line + "\n" for line in keep))

    def records(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        return [json.loads(line) for line in self.path.read_text().splitlines() if line.strip()]
