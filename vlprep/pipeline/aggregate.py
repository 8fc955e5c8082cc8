"""Combine an aggregate stage's partial tables into per-key totals, in bounded memory."""

from __future__ import annotations

import pyarrow as pa

COMBINE_ROWS = 1_000_000  # pending partial rows before they are folded into the totals


class KeyedSums:
    """Running sums of every value column, grouped by the key columns.

    Partials arrive one table at a time; they are folded (pyarrow's hash group-by) whenever
    more than `COMBINE_ROWS` are pending, so memory stays near the number of distinct keys.
    """

    def __init__(self, keys: list[str], schema: pa.Schema, combine_rows: int = COMBINE_ROWS):
        self.keys = keys
        self.schema = schema
        self.values = [n for n in schema.names if n not in keys]
        self.combine_rows = combine_rows
        self.pending: list[pa.Table] = []
        self.pending_rows = 0

    def add(self, partial: pa.Table) -> None:
        if partial.num_rows == 0:
            return
        self.pending.append(partial.select(self.schema.names).cast(self.schema))
        self.pending_rows += partial.num_rows
        if self.pending_rows > self.combine_rows:
            self._fold()

    def _fold(self) -> None:
        table = pa.concat_tables(self.pending)
        summed = table.group_by(self.keys, use_threads=False).aggregate(
            [(v, "sum") for v in self.values])
        summed = summed.rename_columns(
            [n[: -len("_sum")] if n.endswith("_sum") and n[:-4] in self.values else n
             for n in summed.column_names])
        self.pending = [summed.select(self.schema.names).cast(self.schema)]
        self.pending_rows = summed.num_rows

    def result(self) -> pa.Table:
        """The totals so far: one row per key."""
        if not self.pending:
            return self.schema.empty_table()
        self._fold()
        return self.pending[0]
