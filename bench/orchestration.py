"""Orchestration efficiency: how much of the cluster's time goes into training.

    python bench/orchestration.py                     # both parts (~9 min on 2 cores)
    python bench/orchestration.py --part fake-gpus    # 1000 tiny splits on 16 fake GPUs (~2 min)
    python bench/orchestration.py --part builtin      # the built-in 100-split run through the CLI

builtin: `ensemble launch --splits 100` on the built-in data, as a user runs it (a fresh
process that starts its own local cluster). Efficiency = (sum of the splits' in-task
training seconds, from the manifest) / (launch wall seconds x CPUs). Goal: >= 0.9.

fake-gpus: a local cluster with this machine's CPUs and 16 fake GPUs; 1000 splits of one
class each, 1 step of batch 2, one fake GPU and 1/16 of the CPUs per split, so 16 run at
once and each is mostly orchestration: the Ray task, its reports, the result and the
manifest rows. From the manifest's finish times: the start-up (launch to the first split
done: the cluster's worker processes starting and importing torch), and the steady-state
wall time per split from the 100th to the last. Overhead per split = that x real CPUs -
the CPU time one tiny split's own work takes (measured here first, in a warm process):
what the orchestration adds to each split.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from manifests.run_dir import RunDir  # noqa: E402
from command import ENSEMBLE  # noqa: E402

FAKE_GPUS = 16


def builtin_run(work: Path, splits: int) -> list[tuple[str, str]]:
    run = work / "builtin"
    start = time.perf_counter()
    subprocess.run([*ENSEMBLE, "launch", "--splits", str(splits), "--run", str(run)], check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    wall = time.perf_counter() - start
    in_task = [r.train_seconds for r in RunDir(run).read_manifest()]
    cpus = os.cpu_count()
    efficiency = sum(in_task) / (wall * cpus)
    return [
        (f"built-in: launch --splits {splits} wall", f"{wall:.1f} s"),
        ("built-in: mean in-task seconds per split", f"{sum(in_task) / len(in_task):.2f} s"),
        (f"built-in: efficiency (in-task / (wall x {cpus} CPUs))", f"{efficiency:.3f}  (goal >= 0.9: "
         f"{'met' if efficiency >= 0.9 else 'NOT met'})"),
    ]  # fmt: skip


def tiny_split_cpu_seconds(work: Path, gan: dict, repeats: int = 20) -> float:
    """CPU seconds of one tiny split's own work (data, models, 1 step, checkpoint), warm."""
    import torch

    from workers.config import TrainJob
    from workers.train import train_split

    torch.set_num_threads(1)

    def one(i: int) -> None:
        train_split(TrainJob(split=i, classes=[i], class_names=[str(i)], data="builtin", split_dir=str(work / f"t{i}"),
                             steps=1, batch_size=2, seed=i, gan=gan, checkpoint_every=1))  # fmt: skip

    one(0)
    start = time.process_time()
    for i in range(1, repeats + 1):
        one(i)
    return (time.process_time() - start) / repeats


def fake_gpu_run(work: Path, splits: int) -> list[tuple[str, str]]:
    import ray

    from ensemble.launching.coordinator import LaunchRequest, launch
    from ensemble.launching.listener import QuietListener
    from workers.presets import get_preset

    own = tiny_split_cpu_seconds(work / "alone", get_preset("cpu-32").gan.to_dict())
    cpus = os.cpu_count()
    ray.init(num_cpus=cpus, num_gpus=FAKE_GPUS, include_dashboard=False, log_to_driver=False)
    try:
        request = LaunchRequest(run_dir=work / "fake-gpus", splits=splits, steps=1, batch_size=2, checkpoint_every=1,
                                gpus_per_split=1, cpus_per_split=cpus / FAKE_GPUS)  # fmt: skip
        began = dt.datetime.now(dt.timezone.utc)
        start = time.perf_counter()
        summary = launch(request, QuietListener())
        wall = time.perf_counter() - start
    finally:
        ray.shutdown()
    records = RunDir(work / "fake-gpus").read_manifest()
    finished = sorted(r.finished_at for r in records)
    skip = min(100, splits // 2)
    per_split = (finished[-1] - finished[skip]).total_seconds() / (splits - 1 - skip)
    gpus = {r.device.split("GPU ")[1].split(" ")[0] for r in records if "GPU " in (r.device or "")}
    return [
        (f"fake GPUs: {splits} tiny splits, {FAKE_GPUS} at once, wall", f"{wall:.1f} s "
         f"({summary.counts['succeeded']} succeeded, on {len(gpus)} distinct fake GPUs)"),
        ("fake GPUs: start-up (launch to the first split done)", f"{(finished[0] - began).total_seconds():.1f} s"),
        (f"fake GPUs: steady state, wall per split (split {skip} to the last)", f"{per_split * 1e3:.1f} ms"),
        ("fake GPUs: one tiny split's own work, alone (CPU)", f"{own * 1e3:.1f} ms"),
        (f"fake GPUs: overhead per split (wall per split x {cpus} CPUs - own work)",
         f"{(per_split * cpus - own) * 1e3:.1f} ms"),
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["builtin", "fake-gpus", "both"], default="both")
    parser.add_argument("--builtin-splits", type=int, default=100)
    parser.add_argument("--fake-gpu-splits", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="orchestration-bench-"))
    rows = []
    try:
        if args.part in ("fake-gpus", "both"):
            rows += fake_gpu_run(work, args.fake_gpu_splits)
        if args.part in ("builtin", "both"):
            rows += builtin_run(work, args.builtin_splits)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    width = max(len(name) for name, _ in rows)
    print(f"machine: {os.cpu_count()} CPUs")
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
