"""Running the real CLI in a subprocess, and reading a store back for comparison."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow.dataset as ds
import yaml

VLPREP = [sys.executable, "-m", "vlprep"]
TINY_CLIP = {"hidden_size": 32, "intermediate_size": 37, "num_hidden_layers": 2,
             "num_attention_heads": 2, "patch_size": 16, "image_size": 224,
             "projection_dim": 16}


def run_cli(*args: str, timeout: float = 480, env: dict | None = None,
            **kwargs) -> subprocess.CompletedProcess:
    env = {**(env or os.environ), "PYTHONUNBUFFERED": "1"}
    return subprocess.run([*VLPREP, *args], capture_output=True, text=True, timeout=timeout,
                          env=env, **kwargs)


def write_job(path: Path, manifest: Path | str, store: Path, partition_size: int = 2,
              num_frames: int = 8, extra_stages: dict | None = None) -> Path:
    """A job like the demo, with a tiny random CLIP so tests stay fast."""
    job = {
        "name": "test",
        "manifest": str(manifest),
        "store": str(store),
        "partition_size": partition_size,
        "ray": {"num_cpus": 2},
        "stages": {
            "probe": {},
            "texts": {},
            "sample": {"num_frames": num_frames, "size": 224, "batch_size": 1},
            "clip": {"init": "random", "seed": 0, "model_config": TINY_CLIP, "batch_size": 2},
            **(extra_stages or {}),
        },
    }
    path.write_text(yaml.safe_dump(job, sort_keys=False))
    return path


def read_rows(store: Path, table: str) -> list[dict]:
    """All rows of a table, in a canonical order, for exact comparisons between runs."""
    rows = ds.dataset(store / table, format="parquet").to_table().to_pylist()
    return sorted(rows, key=lambda r: tuple(str(v) for v in r.values()))


def store_files(store: Path) -> list[str]:
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())
