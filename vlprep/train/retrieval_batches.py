"""VideoCLIP's retrieval-augmented batches: hard negatives from a FAISS index of videos.

MMPT (``VideoRetriTask``, ``VideoVectorPool``): each video's vector is the mean over its
sampled clips of (pooled video + pooled text) / 2 under the current model; the vectors go
into a FAISS IVF index (512 lists, L2) rebuilt every epoch; a batch is a seed video and
videos drawn from its 64 nearest neighbours, 32 in all. Neighbours look alike, so the
in-batch negatives are harder than random ones.

Here the index covers a *pool* of videos streamed from the store (``pool_size``, default
4096) so memory stays bounded; on a corpus no larger than the pool that is exactly one index
per epoch, as in MMPT. IVF needs ~39 training points per list, so small pools get fewer
lists, and pools under 2 lists' worth use an exact flat index.
"""

from __future__ import annotations

import random

import numpy as np

POINTS_PER_LIST = 39  # FAISS warns below this many training points per IVF list


def build_index(vectors: np.ndarray, lists: int = 512, nprobe: int = 16):
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
    """Batches of pool positions: for each seed (a random ceil(n / videos_per_batch) of
    the videos), the seed and videos_per_batch - 1 drawn from its `candidates` nearest."""
    n = len(vectors)
    if n <= videos_per_batch:
        return [list(range(n))]
    index = index if index is not None else build_index(vectors)
    seeds = rng.sample(range(n), -(-n // videos_per_batch))
    query = np.ascontiguousarray(vectors[seeds], dtype=np.float32)
    _, found = index.search(query, min(n, candidates + 1))
    groups = []
    for seed, row in zip(seeds, found, strict=True):
        near = [int(i) for i in row if i >= 0 and i != seed]
        if len(near) < videos_per_batch - 1:  # IVF probed too few lists: top up at random
            taken = {seed, *near}
            rest = [i for i in range(n) if i not in taken]
            near += rng.sample(rest, videos_per_batch - 1 - len(near))
        groups.append([seed, *rng.sample(near, videos_per_batch - 1)])
    return groups


def random_groups(n: int, videos_per_batch: int, rng: random.Random) -> list[list[int]]:
    """The baseline: the pool shuffled and cut into batches."""
    order = list(range(n))
    rng.shuffle(order)
    return [order[i:i + videos_per_batch] for i in range(0, n, videos_per_batch)]
