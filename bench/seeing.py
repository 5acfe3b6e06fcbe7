"""What seeing a run costs: the TensorBoard file each checkpoint writes, against the split's
training, and `ensemble report` of a whole run.

    python bench/seeing.py                       # TensorBoard's cost per checkpoint (cpu-32, 1 thread)
    python bench/seeing.py --run ensemble-run    # also: the report of that run (time, size)

The TensorBoard part times what train_split adds at each checkpoint (a sample grid with fixed
noise, and one event file with the rows since the last checkpoint) against one whole cpu-32
built-in split of 450 steps, the demo's, in the same process and thread count.
"""
from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.command import installed_command  # noqa: E402
from manifests.tables.history import read_history  # noqa: E402
from manifests.storage import location  # noqa: E402
from workers import tensorboard  # noqa: E402
from workers.config import GANConfig  # noqa: E402
from workers.presets import get_preset  # noqa: E402
from workers.step import GAN  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from guard import job  # noqa: E402  (bench/guard.py's TrainJob of a built-in split)


def tensorboard_cost(rounds: int) -> dict:
    from workers.train import train_split

    torch.set_num_threads(1)  # as in a 1-CPU Ray task
    folder = Path(tempfile.mkdtemp(prefix="acgan-bench-tb-"))
    try:
        start = time.perf_counter()
        train_split(job(41, 450, True, folder / "split", "cpu-32"), device=torch.device("cpu"))
        split_seconds = time.perf_counter() - start
        rows = [[r["step"], *(r[k] for k in ("loss_d", "loss_g", "class_accuracy", "class_accuracy_fake", "d_real",
                                             "d_fake", "train_seconds", "sample_accuracy", "sample_diversity",
                                             "quality"))] for r in read_history(folder / "split")]  # fmt: skip
        rows = [[float("nan") if v is None else v for v in row] for row in rows]
        checkpoints = len([e for e in (folder / "split" / tensorboard.TENSORBOARD_DIR).iterdir()])
        config = GANConfig.from_dict({**get_preset("cpu-32").gan.to_dict(), "num_classes": 10})
        gan = GAN.build(config, torch.device("cpu"))
        target = location(folder / "timed")
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            grid = tensorboard.sample_grid(gan.sampler(), 10, config.z_dim)
            tensorboard.write_segment(target, 41, rows, 0, 450, grid, split_seconds)
            times.append(time.perf_counter() - start)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    per_checkpoint = statistics.median(times)
    return {"split_seconds": split_seconds, "checkpoints": checkpoints, "history_rows": len(rows),
            "per_checkpoint_ms": per_checkpoint * 1000,
            "share_of_split": checkpoints * per_checkpoint / split_seconds}  # fmt: skip


def report_cost(run: str) -> dict:
    out = Path(tempfile.mkdtemp(prefix="acgan-bench-report-")) / "report.html"
    try:
        start = time.perf_counter()
        done = subprocess.run([*installed_command(), "report", "--run", run, "--out", str(out), "--json"],
                              capture_output=True, text=True, check=True)  # fmt: skip
        wall = time.perf_counter() - start
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    figures = json.loads(done.stdout)
    return {"wall_seconds": wall, "build_seconds": figures["seconds"], "megabytes": figures["bytes"] / 1e6,
            "splits_drawn": figures["splits_drawn"]}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", help="a run to report on (e.g. ensemble-run after `make demo`)")
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()
    print(json.dumps({"tensorboard": tensorboard_cost(args.rounds)}))
    if args.run:
        print(json.dumps({"report": report_cost(args.run)}))


if __name__ == "__main__":
    main()
