"""The objectives of the three methods, as plain functions of tensors."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment


def symmetric_infonce(video: torch.Tensor, text: torch.Tensor,
                      scale: float = 1.0) -> torch.Tensor:
    """VideoCLIP's contrastive loss: dot products of the pooled vectors (times `scale`) as
    logits, the i-th video and i-th text a positive pair, cross-entropy both ways."""
    logits = scale * (video @ text.t())
    target = torch.arange(len(video), device=video.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def vtc(video: torch.Tensor, text: torch.Tensor, temperature: torch.Tensor) -> torch.Tensor:
    """ALPRO's video-text contrastive loss on L2-normalised embeddings over a temperature."""
    video, text = F.normalize(video, dim=-1), F.normalize(text, dim=-1)
    logits = video @ text.t() / temperature
    target = torch.arange(len(video), device=video.device)
    return (F.cross_entropy(logits, target) + F.cross_entropy(logits.t(), target)) / 2


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor,
                       ignore: torch.Tensor | None = None) -> torch.Tensor:
    """ALPRO's PEM loss: -sum(target * log_softmax) per row, averaged over kept rows."""
    per_row = -(targets * F.log_softmax(logits, dim=-1)).sum(-1)
    if ignore is not None:
        per_row = per_row[~ignore]
    if per_row.numel() == 0:
        return logits.sum() * 0.0
    return per_row.mean()


def hungarian_pairs(queries: torch.Tensor, targets: torch.Tensor) -> tuple[np.ndarray,
                                                                           np.ndarray]:
    """STOA-VLP's bipartite matching: maximise the softmax(query . target) over targets,
    one target per query at most (scipy's Hungarian algorithm on a rectangular matrix)."""
    with torch.no_grad():
        scores = (queries.float() @ targets.float().t()).softmax(dim=-1)
    rows, cols = linear_sum_assignment(scores.cpu().numpy(), maximize=True)
    return rows, cols


def matched_mse(queries: list[torch.Tensor], targets: list[torch.Tensor]) -> torch.Tensor:
    """Per sample: match queries (Q_i x D) to target tokens (T_i x D, detached: the text
    side is the teacher) and take the MSE over all matched pairs of the batch."""
    picked_q, picked_t = [], []
    for q, t in zip(queries, targets, strict=True):
        if len(q) == 0 or len(t) == 0:
            continue
        rows, cols = hungarian_pairs(q, t)
        picked_q.append(q[torch.as_tensor(rows, device=q.device)])
        picked_t.append(t[torch.as_tensor(cols, device=t.device)].detach())
    if not picked_q:
        zero = sum((q.sum() for q in queries), torch.zeros(()))
        return zero * 0.0
    return F.mse_loss(torch.cat(picked_q), torch.cat(picked_t))
