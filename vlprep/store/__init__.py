"""The feature store: its layout, its one filesystem opener, the worker-side writer, the
driver-side committer, and the one reader of committed data that everything else uses."""

from vlprep.store.fs import StoreError, open_filesystem
from vlprep.store.layout import COMMITS, INDEX, INPUTS, RECIPE_FILE, RUNS, TMP
from vlprep.store.reader import CommittedStore
from vlprep.store.store import Commit, Store

__all__ = ["COMMITS", "INDEX", "INPUTS", "RECIPE_FILE", "RUNS", "TMP", "Commit",
           "CommittedStore", "Store", "StoreError", "open_filesystem"]
