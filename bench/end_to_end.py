"""Wall time of the quick-start loop, measured through the real CLI in fresh processes.

    python bench/end_to_end.py                     # built-in data, 100 splits, new run dir
    python bench/end_to_end.py --run DIR --skip-launch   # time status/sample on an existing run

Prints: launch wall time, mean in-task seconds per split, orchestration efficiency
(sum of in-task seconds / (wall seconds x CPUs)), and the median wall time of
`ensemble status` and `ensemble sample --label 417` over 5 runs each.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifests.run_dir import RunDir  # noqa: E402

# The console script of the Python running this (a venv need not be activated).
ENSEMBLE = shutil.which("ensemble", path=str(Path(sys.executable).parent)) or shutil.which("ensemble") or "ensemble"


def timed(*args: str) -> float:
    start = time.perf_counter()
    subprocess.run([ENSEMBLE, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="run directory (default: a new temporary one)")
    parser.add_argument("--splits", default="100")
    parser.add_argument("--skip-launch", action="store_true")
    args = parser.parse_args()
    run = Path(args.run or tempfile.mkdtemp(prefix="ensemble-bench-")) / ("" if args.run else "run")

    rows = []
    if not args.skip_launch:
        wall = timed("launch", "--splits", args.splits, "--run", str(run))
        records = RunDir(run).read_manifest()
        in_task = [r.train_seconds for r in records]
        rows += [
            ("launch --splits " + args.splits + " (wall)", f"{wall:.1f} s"),
            ("mean in-task seconds per split", f"{statistics.mean(in_task):.2f} s"),
            ("orchestration efficiency", f"{sum(in_task) / (wall * os.cpu_count()):.2f}"),
        ]
    status = statistics.median(timed("status", "--run", str(run)) for _ in range(5))
    out = Path(tempfile.mkdtemp()) / "s.png"
    sample = statistics.median(timed("sample", "--label", "417", "--run", str(run), "--out", str(out)) for _ in range(5))
    rows += [("ensemble status (median of 5)", f"{status:.2f} s"),
             ("ensemble sample --label 417 (median of 5)", f"{sample:.2f} s")]  # fmt: skip
    width = max(len(name) for name, _ in rows)
    print(f"run: {run}  cpus: {os.cpu_count()}")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
