"""Arrow feature columns to and from flat numpy buffers, without per-row Python lists.

Kept out of ``schemas/`` (which depends on pyarrow alone): stages build their vector columns
with :func:`list_of_vectors`, exporters and trainers read VideoCLIP's sharded layout with
:func:`s3d_sharded`.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa


def list_of_vectors(values: np.ndarray, offsets: np.ndarray, dim: int,
                    value_type: pa.DataType) -> pa.ListArray:
    """A list<fixed_size_list<value_type, dim>> column from one flat buffer and row offsets."""
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=value_type)
    vectors = pa.FixedSizeListArray.from_arrays(flat, dim)
    return pa.ListArray.from_arrays(pa.array(np.asarray(offsets, np.int32)), vectors)


def list_rows(values: np.ndarray, value_type: pa.DataType) -> pa.ListArray:
    """A list<value_type> column with one row per row of a 2-D array (all of its length)."""
    rows, width = values.shape
    flat = pa.array(np.ascontiguousarray(values).reshape(-1), type=value_type)
    return pa.ListArray.from_arrays(pa.array(np.arange(rows + 1, dtype=np.int32) * width), flat)


def s3d_sharded(table: pa.Table, column: str = "features") -> tuple[np.ndarray, np.ndarray]:
    """(data, starts) as VideoCLIP's ShardedTensor holds them: data is the n_total x D array
    of all videos' per-second features in row order, video i is data[starts[i]:starts[i+1]]."""
    features = table.column(column).combine_chunks()
    dim = features.type.value_type.list_size
    starts = features.offsets.to_numpy().astype(np.int64)
    starts = starts - starts[0]
    flat = features.flatten().flatten().to_numpy(zero_copy_only=False)
    return flat.reshape(-1, dim), starts
