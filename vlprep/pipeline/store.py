"""Moved to :mod:`vlprep.store`; these names stay importable from here for existing callers."""

from vlprep.store.fs import StoreError, open_filesystem
from vlprep.store.layout import COMMITS, INPUTS, TMP, part_name, pass_prefix
from vlprep.store.parquet import split_by_bytes, write_parquet
from vlprep.store.store import Commit, Store

__all__ = ["COMMITS", "INPUTS", "TMP", "Commit", "Store", "StoreError", "open_filesystem",
           "part_name", "pass_prefix", "split_by_bytes", "write_parquet"]
