"""Benchmark: each method trained on the synthetic corpus, held-out R@1 against chance.

    .venv/bin/python bench/train.py [--methods videoclip,alpro,stoa] [--work DIR] [--json]

For each method this runs the built-in job ``synthetic-<method>`` (all backbones with random
weights; skipped when WORK already holds its finished store), trains with the preset of
:mod:`vlprep.train.presets` on CPU, and prints one row: held-out text-to-video R@1, chance
R@1 (100 / held-out videos), their ratio (the acceptance asks for at least 5), R@5, median
rank, and wall seconds for the pipeline and for training. For VideoCLIP it also prints how
much harder the retrieval-augmented batches were than random ones at the start of the last
epoch (mean in-batch loss and mean rank of the right video).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from vlprep.train.app import run_train
from vlprep.train.method import TrainConfig
from vlprep.train.metrics import MetricsLog
from vlprep.train.presets import SYNTHETIC


def make_store(method: str, work: Path) -> tuple[Path, float]:
    store = work / f"{method}-store"
    started = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "vlprep", "run", SYNTHETIC[method]["job"],
                             "--set", f"store={store}", "--quiet"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{method}: the synthetic job failed:\n{result.stderr[-2000:]}")
    return store, time.monotonic() - started


def bench(method: str, work: Path) -> dict:
    store, pipeline_s = make_store(method, work)
    preset = SYNTHETIC[method]
    cfg = TrainConfig(store=str(store), out=str(work / f"{method}-run"), epochs=preset["epochs"],
                      batch_size=preset["batch_size"], lr=preset["lr"], quiet=True,
                      resume=False, options=dict(preset["options"]))
    started = time.monotonic()
    result = run_train(method, cfg)
    row = {"method": method, "pipeline_s": round(pipeline_s, 1),
           "train_s": round(time.monotonic() - started, 1), **result["eval"]}
    row["ratio"] = row["R@1"] / row["chance_R@1"]
    batches = [r for r in MetricsLog(Path(cfg.out) / "metrics.jsonl").records()
               if r["kind"] == "batches"]
    if batches:
        row["difficulty"] = {k: round(v, 3) for k, v in batches[-1].items()
                             if k.startswith(("batches_", "random_"))}
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="videoclip,alpro,stoa")
    parser.add_argument("--work", type=Path,
                        default=Path(tempfile.gettempdir()) / "vlprep-bench-train")
    parser.add_argument("--json", action="store_true", help="one JSON object per method")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"{'method':10} {'videos':>6} {'R@1':>6} {'chance':>6} {'ratio':>6} {'R@5':>6} "
          f"{'MdR':>5} {'pipeline s':>10} {'train s':>8}")
    for method in args.methods.split(","):
        row = bench(method, args.work)
        if args.json:
            print(json.dumps(row))
            continue
        print(f"{method:10} {row['videos']:>6} {row['R@1']:>6.1f} {row['chance_R@1']:>6.1f} "
              f"{row['ratio']:>5.1f}x {row['R@5']:>6.1f} {row['MdR']:>5g} "
              f"{row['pipeline_s']:>10.0f} {row['train_s']:>8.0f}")
        if "difficulty" in row:
            d = row["difficulty"]
            print(f"{'':10} retrieval batches vs random: loss {d['batches_loss']:.2f} vs "
                  f"{d['random_loss']:.2f}, right video's rank {d['batches_rank']:.1f} vs "
                  f"{d['random_rank']:.1f}")


if __name__ == "__main__":
    main()
