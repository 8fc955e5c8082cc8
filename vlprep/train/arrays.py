"""Arrow feature columns to numpy without per-row Python objects.

Stored vectors are fixed-size lists of fp16; a video's rows arrive as a small pyarrow table,
and these helpers take its flat value buffers straight to float32 arrays.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch


def _flat(array: pa.Array) -> np.ndarray:
    return array.to_numpy(zero_copy_only=False)


def vectors(table: pa.Table, column: str) -> np.ndarray:
    """A fixed_size_list<float, D> column as float32 rows x D."""
    col = table.column(column).combine_chunks()
    dim = col.type.list_size
    if len(col) == 0:
        return np.zeros((0, dim), np.float32)
    return _flat(col.flatten()).astype(np.float32).reshape(len(col), dim)


def vector_lists(table: pa.Table, column: str) -> list[np.ndarray]:
    """A list<fixed_size_list<float, D>> column as one float32 n_i x D array per row (null
    rows give 0 x D)."""
    col = table.column(column).combine_chunks()
    dim = col.type.value_type.list_size
    offsets = col.offsets.to_numpy()
    flat = _flat(col.flatten().flatten()).astype(np.float32).reshape(-1, dim)
    base = offsets[0]
    return [flat[offsets[i] - base: offsets[i + 1] - base] if col[i].is_valid
            else np.zeros((0, dim), np.float32) for i in range(len(col))]


def sorted_by(table: pa.Table, *columns: str) -> pa.Table:
    """Rows in ascending order of `columns` (e.g. a video's frames by sample_rank)."""
    if table.num_rows <= 1:
        return table
    return table.take(pc.sort_indices(table, [(c, "ascending") for c in columns]))


def dim_of(schema: pa.Schema, column: str) -> int:
    """The vector size of a fixed_size_list column, or of a list of them."""
    kind = schema.field(column).type
    while not isinstance(kind, pa.FixedSizeListType):
        kind = kind.value_type
    return int(kind.list_size)


def pad_sequences(seqs: list[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad T_i x D float arrays to B x T x D, with the B x T validity mask."""
    length = max(1, max(len(s) for s in seqs))
    out = np.zeros((len(seqs), length, seqs[0].shape[1]), np.float32)
    mask = np.zeros((len(seqs), length), bool)
    for i, s in enumerate(seqs):
        out[i, : len(s)] = s
        mask[i, : len(s)] = True
    return torch.from_numpy(out), torch.from_numpy(mask)
