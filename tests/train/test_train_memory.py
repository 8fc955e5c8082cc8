"""Training streams the store: its peak memory stays far below the size of the table it reads.

Measured in a fresh process with Arrow's own allocation high-water mark (Arrow holds the
Parquet data) and the growth of the process's peak RSS after the first video; the same
process then reads the table whole, to show that the Arrow probe does see such a load.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from train_fake_store import write_store

from vlprep.train.store_reader import StoreReader

SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import pyarrow as pa, pyarrow.parquet as pq
    from vlprep.train.arrays import vector_lists, vectors
    from vlprep.train.data import ReadSpec, StoreDataset

    def rss():
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    spec = ReadSpec("clip_frames", {"clip_frames": ["embedding", "patch_tokens"],
                                    "texts": ["bert_ids"]}, frozenset({"clip_frames"}))
    def transform(rows, rng):
        frames = rows.tables["clip_frames"]
        yield float(vectors(frames, "embedding").sum() + sum(
            t.sum() for t in vector_lists(frames, "patch_tokens")))

    items = iter(StoreDataset(sys.argv[1], spec, transform, split="all", shuffle_buffer=16))
    next(items)  # the first video pays one-off costs (libraries, thread pools)
    rss_first = rss()
    n = 1 + sum(1 for _ in items)
    streamed = {"videos": n, "arrow_peak": pa.default_memory_pool().max_memory(),
                "rss_growth": rss() - rss_first}
    whole = pq.read_table(sys.argv[1] + "/clip_frames")
    streamed["arrow_peak_whole"] = pa.default_memory_pool().max_memory()
    print(json.dumps(streamed))
""")


def test_training_reader_never_holds_a_whole_table(tmp_path):
    store = write_store(tmp_path / "big", 192, partition_size=64, target_file_bytes=1 << 19,
                        frames=8, grid=10, patch_dim=128)
    reader = StoreReader(str(store))
    table_bytes = sum(reader.metadata(p).row_group(i).total_byte_size
                      for p in reader.table_files("clip_frames")
                      for i in range(reader.metadata(p).num_row_groups))
    assert table_bytes > 35e6  # ~39 MB of patch tokens and embeddings
    result = subprocess.run([sys.executable, "-c", SCRIPT, str(store)], capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    got = json.loads(result.stdout.strip().splitlines()[-1])
    assert got["videos"] == 192
    assert got["arrow_peak"] < table_bytes / 3, got
    assert got["rss_growth"] < table_bytes / 4, got
    # the Arrow probe does see a whole-table load
    assert got["arrow_peak_whole"] > table_bytes * 0.9, got
