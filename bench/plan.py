"""How good `vlprep plan` is (issue 9): its estimates against the run that follows, side by side.

Runs `vlprep plan JOB --json` and then `vlprep run JOB` into a fresh store, each in a child
process, and prints estimated / actual for the run's wall time (the target is within 2x) and
for every table's bytes (within 30%).

    .venv/bin/python bench/plan.py [--job demo] [--sample 2] [--json F]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--job", default="demo")
    parser.add_argument("--sample", type=int, default=2)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="vlprep-bench-plan-") as tmp:
        store = Path(tmp) / "store"
        cli = [sys.executable, "-m", "vlprep"]
        planned = subprocess.run([*cli, "plan", args.job, "--json", "--sample", str(args.sample),
                                  "--set", f"store={store}"], capture_output=True, text=True,
                                 check=True)
        estimate = json.loads(planned.stdout)
        started = time.perf_counter()
        subprocess.run([*cli, "run", args.job, "--quiet", "--set", f"store={store}"],
                       capture_output=True, text=True, check=True)
        seconds = time.perf_counter() - started
        tables = {}
        for table in estimate["tables"]:
            written = sum(f.stat().st_size for f in (store / table["name"]).glob("*.parquet"))
            ratio = round(table["bytes"] / written, 3) if written else None
            tables[table["name"]] = {"estimated_bytes": table["bytes"], "written_bytes": written,
                                     "ratio": ratio}
    result = {"job": args.job, "sample": args.sample, "estimated_s": round(estimate["seconds"], 1),
              "actual_s": round(seconds, 1), "time_ratio": round(estimate["seconds"] / seconds, 3),
              "tables": tables}
    print(f"time: estimated {result['estimated_s']} s, run {result['actual_s']} s "
          f"(estimate/actual {result['time_ratio']}; target 0.5-2)")
    for name, t in tables.items():
        print(f"  {name:14s} estimated {t['estimated_bytes']:>12,d} B  written "
              f"{t['written_bytes']:>12,d} B  ratio {t['ratio']}")
    if args.json:
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
