"""VideoCLIP's retrieval-augmented batches: hard negatives from a FAISS index of videos.

MMPT (``VideoRetriTask``, ``VideoVectorPool``, ``VectorRetriever`` in mmpt/tasks/retritask.py
and mmpt/modules/; settings of projects/retri/videoclip/how2.yaml): each video's vector is
the mean over its ``clip_per_video`` (16) sampled clips of (pooled video + pooled text) / 2
under the current model; the vectors go into a FAISS IVF index (512 lists, L2, FAISS's
default nprobe of 1: MMPT leaves it unset) rebuilt every epoch; ``len // 32`` random seed
videos each search their 64 nearest (``num_cands``), and a batch is 32
(``num_video_per_batch``) drawn at random from the seed and those neighbours. Neighbours look
alike, so the in-batch negatives are harder than random ones.

Here the index covers a *pool* of videos streamed from the store (``pool_size``, default
4096) so memory stays bounded; on a corpus no larger than the pool that is exactly one index
per epoch, as in MMPT. IVF needs ~39 training points per list, so small pools get fewer
lists, and pools under 2 lists' worth use an exact flat index. Where one probed list holds
fewer videos than a batch needs (small pools), the probe widens until it finds enough;
MMPT's batch would shrink instead.
"""

from __future__ import annotations

import random

import numpy as np

POINTS_PER_LIST = 39  # FAISS warns below this many training points per IVF list


def build_index(vectors: np.ndarray, lists: int = 512, nprobe: int = 1):
    """An L2 FAISS index over float32 `vectors` (IVF when there are enough of them)."""
    import faiss

    x = np.ascontiguousarray(vectors, dtype=np.float32)
    dim = x.shape[1]
    nlist = min(lists, len(x) // POINTS_PER_LIST)
    if nlist < 2:
        index = faiss.IndexFlatL2(dim)
    else:
        index = faiss.IndexIVFFlat(faiss.IndexFlatL2(dim), dim, nlist, faiss.METRIC_L2)
        index.train(x)
        index.nprobe = min(nlist, nprobe)
    index.add(x)
    return index


def retrieval_groups(vectors: np.ndarray, videos_per_batch: int, candidates: int,
                     rng: random.Random, index=None) -> list[list[int]]:
    """Batches of pool positions, as MMPT's ``VideoRetriPredictor``: for each of
    n // videos_per_batch random seeds, videos_per_batch drawn from the seed and its
    `candidates` nearest (the seed itself not always among them)."""
    n = len(vectors)
    if n <= videos_per_batch:
        return [list(range(n))]
    index = index if index is not None else build_index(vectors)
    seeds = rng.sample(range(n), max(1, n // videos_per_batch))
    query = np.ascontiguousarray(vectors[seeds], dtype=np.float32)
    found = search(index, query, min(n, candidates), videos_per_batch)
    groups = []
    for seed, row in zip(seeds, found, strict=True):
        near = [seed, *(int(i) for i in row if i >= 0 and i != seed)]
        if len(near) < videos_per_batch:  # cannot happen once the probe covers every list
            taken = set(near)
            near += rng.sample([i for i in range(n) if i not in taken],
                               videos_per_batch - len(near))
        groups.append(rng.sample(near, videos_per_batch) if len(near) > videos_per_batch
                      else near)
    return groups


def search(index, query: np.ndarray, k: int, need: int) -> np.ndarray:
    """The k nearest of each query; an IVF probe is widened (doubled) while some query finds
    fewer than `need` - 1 others."""
    _, found = index.search(query, k)
    nprobe = getattr(index, "nprobe", None)
    while nprobe is not None and index.nprobe < index.nlist and \
            ((found >= 0).sum(1) < min(k, need)).any():
        index.nprobe = min(index.nlist, index.nprobe * 2)
        _, found = index.search(query, k)
    if nprobe is not None:
        index.nprobe = nprobe
    return found


def random_groups(n: int, videos_per_batch: int, rng: random.Random) -> list[list[int]]:
    """The baseline: the pool shuffled and cut into batches."""
    order = list(range(n))
    rng.shuffle(order)
    return [order[i:i + videos_per_batch] for i in range(0, n, videos_per_batch)]
