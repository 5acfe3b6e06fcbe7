"""`ensemble status` and label routing on manifests of 100 and 10,000 splits.

    python bench/status_scale.py                 # 100 and 10,000 splits
    python bench/status_scale.py --splits 100,1000,10000 --repeats 7

Writes a run folder per size whose manifest looks like a finished run (every split
succeeded, losses, device, node and timestamps filled, 10 classes per split, names and
class ids), with the real manifest writer. Then times, as a user runs them (a fresh
process each, output to a pipe), `ensemble status`, `status --summary` and
`status --json`: the median of --repeats runs, against the goals of < 0.3 s at 100
splits and < 1 s at 10,000. In-process it times reading the manifest, building the
label router, and routing one label (a name and an index, averaged over 10,000 lookups).
"""
from __future__ import annotations

import argparse
import os
import datetime as dt
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ensemble.routing import Router  # noqa: E402
from ensemble.status.read import read_status  # noqa: E402
from manifests.run_dir import RunDir  # noqa: E402
from manifests.tables.manifest import SplitRecord, Status  # noqa: E402
from command import ENSEMBLE  # noqa: E402

GOALS = {100: 0.3, 10_000: 1.0}
CLASSES_PER_SPLIT = 10


def finished_run(root: Path, splits: int) -> RunDir:
    run = RunDir(root)
    rng = random.Random(splits)
    start = dt.datetime(2026, 11, 22, 8, 0, tzinfo=dt.timezone.utc)
    records = []
    for split in range(splits):
        classes = list(range(split * CLASSES_PER_SPLIT, (split + 1) * CLASSES_PER_SPLIT))
        records.append(SplitRecord(
            split=split, classes=classes, class_names=[f"class {c} name" for c in classes],
            class_ids=[f"n{c:08d}" for c in classes], status=Status.SUCCEEDED, attempt=1, step=450, total_steps=450,
            loss_d=rng.uniform(0.5, 1.5), loss_g=rng.uniform(0.5, 3.0), class_accuracy=rng.uniform(0.8, 1.0),
            checkpoint=f"splits/{split:03d}/generator.safetensors", checkpoint_step=450, node="10.0.0.7",
            pid=rng.randrange(1000, 99999), device="cuda:0 (NVIDIA H100 80GB HBM3)", train_seconds=rng.uniform(8, 12),
            started_at=start, updated_at=start, finished_at=start, resumed_from=0, skipped_images=0,
        ))  # fmt: skip
    run.write_spec({"note": "written by bench/status_scale.py"})
    run.write_manifest(records)
    return run


def wall(*args: str, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*ENSEMBLE, *args], check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--splits", default="100,10000", help="comma-separated manifest sizes")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    sizes = [int(s) for s in args.splits.split(",")]
    work = Path(tempfile.mkdtemp(prefix="status-bench-"))
    try:
        print(f"{'splits':>7}  {'measure':<34} {'median':>10}  goal")
        for splits in sizes:
            run = finished_run(work / f"run-{splits}", splits)
            size_kb = os.path.getsize(run.manifest_path) / 1024
            goal = GOALS.get(splits)
            for label, extra in (("ensemble status", ()), ("ensemble status --summary", ("--summary",)),
                                 ("ensemble status --json", ("--json",))):  # fmt: skip
                seconds = wall("status", "--run", str(run.root), *extra, repeats=args.repeats)
                verdict = "" if goal is None else f"< {goal} s: {'met' if seconds < goal else 'NOT met'}"
                print(f"{splits:>7}  {label:<34} {seconds:>8.3f} s  {verdict}", flush=True)
            read = statistics.median(per_call(lambda i: read_status(run.root), 1) for _ in range(args.repeats))
            records = read_status(run.root).records
            build = statistics.median(per_call(lambda i: Router(records), 1) for _ in range(args.repeats))
            router = Router(records)
            labels = splits * CLASSES_PER_SPLIT
            by_index = per_call(lambda i: router.resolve(str(i * 7919 % labels)), 10_000)
            by_name = per_call(lambda i: router.resolve(f"Class {i * 7919 % labels} Name"), 10_000)
            print(f"{splits:>7}  {f'manifest read in-process ({size_kb:.0f} KiB)':<34} {read * 1e3:>8.1f} ms")
            print(f"{splits:>7}  {'router build':<34} {build * 1e3:>8.1f} ms")
            print(f"{splits:>7}  {'route one label (index / name)':<34} {by_index * 1e6:>5.1f} / {by_name * 1e6:.1f} us",
                  flush=True)  # fmt: skip
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
