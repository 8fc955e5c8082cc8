"""Feature health over whole tables, streamed a record batch at a time (bounded memory).

Per embedding column (any float vector column of 16 or more values: CLIP embeddings, S3D
features, region features, patch tokens): vectors, NaN / Inf / all-zero counts and a norm
histogram on fixed log-spaced bins (exact, whatever the table's size). Near-duplicate videos:
the mean CLIP embedding of each video, cosine >= 0.99 with FAISS (exact search up to
``EXACT_SEARCH_VIDEOS`` videos, an IVF index beyond). Entities: the 50 most frequent.
Soft labels: the top-probability histogram and the low-confidence share.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from vlprep.report.source import ReportSource

NORM_EDGES = np.logspace(-4, 4, 161)  # 0.0001 .. 10000, 20 bins a decade
PROB_EDGES = np.linspace(0.0, 1.0, 21)
MIN_VECTOR = 16  # shorter float vectors are boxes and geometry, not embeddings
DUPLICATE_COSINE = 0.99
EXACT_SEARCH_VIDEOS = 50_000
MAX_DUPLICATE_VIDEOS = 1_000_000  # mean embeddings held: 2 KB each at 512 dims
BATCH_ROWS = 64


@dataclass
class ColumnHealth:
    table: str
    column: str
    dim: int
    rows: int = 0
    null_rows: int = 0
    vectors: int = 0
    nan: int = 0
    inf: int = 0
    zero: int = 0
    norm_min: float = float("inf")
    norm_max: float = 0.0
    norm_sum: float = 0.0
    below: int = 0  # finite norms under the first bin edge (zeros included)
    above: int = 0
    counts: np.ndarray = field(default_factory=lambda: np.zeros(len(NORM_EDGES) - 1, np.int64))

    @property
    def norm_mean(self) -> float:
        finite = self.vectors - self.nan - self.inf
        return self.norm_sum / finite if finite else float("nan")

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors) == 0:
            return
        x = vectors.astype(np.float32, copy=False)
        nan = np.isnan(x).any(axis=1)
        inf = np.isinf(x).any(axis=1) & ~nan
        finite = ~(nan | inf)
        norms = np.linalg.norm(x[finite], axis=1)
        self.vectors += len(x)
        self.nan += int(nan.sum())
        self.inf += int(inf.sum())
        self.zero += int((norms == 0).sum())
        if len(norms):
            self.norm_min = min(self.norm_min, float(norms.min()))
            self.norm_max = max(self.norm_max, float(norms.max()))
            self.norm_sum += float(norms.sum())
            self.below += int((norms < NORM_EDGES[0]).sum())
            self.above += int((norms > NORM_EDGES[-1]).sum())
            self.counts += np.histogram(norms, bins=NORM_EDGES)[0]


def _vector_dim(dtype: pa.DataType) -> tuple[int, bool] | None:
    """(dim, is a list of vectors) for a float vector column, else None."""
    nested = False
    if pa.types.is_list(dtype) or pa.types.is_large_list(dtype):
        dtype, nested = dtype.value_type, True
    if pa.types.is_fixed_size_list(dtype) and pa.types.is_floating(dtype.value_type) \
            and dtype.list_size >= MIN_VECTOR:
        return dtype.list_size, nested
    return None


def vector_columns(schema: pa.Schema) -> dict[str, tuple[int, bool]]:
    return {f.name: d for f in schema if (d := _vector_dim(f.type)) is not None}


def vectors_of(column: pa.Array, dim: int, nested: bool) -> np.ndarray:
    """The column's vectors as an n x dim array (nulls dropped)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if column.null_count:
        column = column.filter(column.is_valid())
    if nested:
        column = column.flatten()
        if column.null_count:
            column = column.filter(column.is_valid())
    flat = column.flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(-1, dim)


@dataclass
class Duplicates:
    videos: int = 0
    searched: int = 0
    method: str = ""
    groups: list[list[tuple[str, float]]] = field(default_factory=list)  # (video, cosine)
    exact_pairs: int = 0
    near_pairs: int = 0


@dataclass
class Health:
    columns: list[ColumnHealth]
    duplicates: Duplicates | None
    entities: list[tuple[str, int]]  # top 50 (lemma, count)
    entities_total: int
    soft_rows: int
    soft_low: int
    soft_counts: np.ndarray | None
    rows: dict[str, int]


def column_health(src: ReportSource, table: str, progress=None) -> list[ColumnHealth]:
    schema = src.schema(table)
    if schema is None:
        return []
    cols = vector_columns(schema)
    if not cols:
        return []
    stats = {c: ColumnHealth(table, c, d) for c, (d, _) in cols.items()}
    for batch in src.batches(table, list(cols), BATCH_ROWS):
        for name, (dim, nested) in cols.items():
            column = batch.column(name)
            stats[name].rows += batch.num_rows
            stats[name].null_rows += column.null_count
            stats[name].add(vectors_of(column, dim, nested))
        if progress is not None:
            progress(batch.num_rows)
    return list(stats.values())


def mean_embeddings(src: ReportSource, table: str = "clip_frames", column: str = "embedding",
                    limit: int = MAX_DUPLICATE_VIDEOS) -> tuple[list[str], np.ndarray]:
    """Per video the normalised mean of its frame embeddings, a partition at a time (every
    row of a video is inside its partition), for up to `limit` videos."""
    ids: list[str] = []
    means: list[np.ndarray] = []
    for key, per in src.partitions().items():
        if table not in per or len(ids) >= limit:
            continue
        sums: dict[str, np.ndarray] = {}
        data = src.source.partition_table(key, table, ["video_id", column])
        if data is None:
            continue
        vids = data.column("video_id").to_pylist()
        x = vectors_of(data.column(column), _vector_dim(data.schema.field(column).type)[0],
                       False).astype(np.float32)
        for vid, vec in zip(vids, x, strict=True):
            if vid in sums:
                sums[vid] += vec
            else:
                sums[vid] = vec.copy()
        for vid, total in sums.items():
            ids.append(vid)
            means.append(total)
    if not means:
        return [], np.zeros((0, 0), np.float32)
    m = np.stack(means[:limit])
    norms = np.linalg.norm(m, axis=1, keepdims=True)
    return ids[:limit], m / np.maximum(norms, 1e-12)


def find_duplicates(ids: list[str], x: np.ndarray,
                    threshold: float = DUPLICATE_COSINE) -> Duplicates:
    """Groups of videos whose mean embeddings have cosine >= threshold (FAISS range search;
    exact = identical mean embeddings)."""
    out = Duplicates(videos=len(ids), searched=len(ids))
    if len(ids) < 2:
        out.method = "fewer than 2 videos"
        return out
    import faiss

    x = np.ascontiguousarray(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), np.float32)
    d = x.shape[1]
    if len(x) <= EXACT_SEARCH_VIDEOS:
        index = faiss.IndexFlatIP(d)
        out.method = "exact inner-product search (FAISS IndexFlatIP)"
    else:
        nlist = int(np.sqrt(len(x)))
        index = faiss.IndexIVFFlat(faiss.IndexFlatIP(d), d, nlist, faiss.METRIC_INNER_PRODUCT)
        index.train(x)
        index.nprobe = 8
        out.method = f"approximate search (FAISS IVF, {nlist} lists, nprobe 8)"
    index.add(x)
    parent = list(range(len(x)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    best = np.zeros(len(x), np.float32)
    for start in range(0, len(x), 4096):
        lims, sims, found = index.range_search(x[start:start + 4096], threshold)
        for q in range(len(lims) - 1):
            i = start + q
            for j, s in zip(found[lims[q]:lims[q + 1]], sims[lims[q]:lims[q + 1]], strict=True):
                if j <= i:
                    continue
                if np.array_equal(x[i], x[j]):
                    out.exact_pairs += 1
                else:
                    out.near_pairs += 1
                best[i], best[j] = max(best[i], s), max(best[j], s)
                parent[root(int(j))] = root(i)
    groups: dict[int, list[int]] = {}
    for i in range(len(x)):
        if best[i] > 0:
            groups.setdefault(root(i), []).append(i)
    out.groups = sorted(([(ids[i], float(min(best[i], 1.0))) for i in g]
                         for g in groups.values()), key=lambda g: -len(g))
    return out


def soft_label_health(src: ReportSource) -> tuple[int, int, np.ndarray | None]:
    if "soft_labels" not in src.tables():
        return 0, 0, None
    rows = low = 0
    counts = np.zeros(len(PROB_EDGES) - 1, np.int64)
    for batch in src.batches("soft_labels", ["top_prob", "low_confidence"], 65536):
        p = batch.column("top_prob").to_numpy(zero_copy_only=False)
        rows += len(p)
        low += int(np.asarray(batch.column("low_confidence").to_numpy(zero_copy_only=False),
                              bool).sum())
        counts += np.histogram(np.clip(p, 0, 1), bins=PROB_EDGES)[0]
    return rows, low, counts


def top_entities(src: ReportSource, n: int = 50) -> tuple[list[tuple[str, int]], int]:
    if "entities" not in src.tables():
        return [], 0
    data = src.read_small("entities", ["rank", "lemma", "count"])
    if data is None:
        return [], 0
    data = data.sort_by("rank")
    return list(zip(data.column("lemma").to_pylist()[:n],
                    data.column("count").to_pylist()[:n], strict=True)), data.num_rows


def build_health(src: ReportSource, progress=None) -> Health:
    tables = src.tables()
    columns = [c for t in tables for c in column_health(src, t, progress)]
    duplicates = None
    if "clip_frames" in tables and "embedding" in src.columns("clip_frames"):
        ids, x = mean_embeddings(src)
        duplicates = find_duplicates(ids, x)
        duplicates.videos = len(ids)
    entities, total = top_entities(src)
    soft_rows, soft_low, soft_counts = soft_label_health(src)
    return Health(columns, duplicates, entities, total, soft_rows, soft_low, soft_counts,
                  {t: src.table_stats(t)["rows"] for t in tables})
