"""What the quality guard costs a split: training with and without it, in one process,
interleaved, the same split and seed each time.

    python bench/guard.py                      # cpu-32 on a built-in split, 450 steps (the demo's)
    python bench/guard.py --steps 3000         # a longer run: the classifier's one-off cost shrinks

Reports the median wall time of train_split with the guard off and on, the overhead, and
its parts: the classifier (trained once per split), and the checks at each checkpoint
(sampling a fixed batch per class, scoring it, writing the best generator when it improves).
"""
from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.config import GANConfig, TrainJob  # noqa: E402
from workers.datasets import load_split_images  # noqa: E402
from workers.datasets.builtin import CLASS_NAMES  # noqa: E402
from workers.quality.guard import QualityGuard  # noqa: E402
from workers.presets import get_preset  # noqa: E402
from workers.step import GAN  # noqa: E402
from workers.train import train_split  # noqa: E402


def job(split: int, steps: int, guard: bool, folder: Path, preset: str) -> TrainJob:
    classes = list(range(split * 10, split * 10 + 10))
    shutil.rmtree(folder, ignore_errors=True)
    recipe = get_preset(preset)
    return TrainJob(split=split, classes=classes, class_names=[CLASS_NAMES[c] for c in classes], data="builtin",
                    split_dir=str(folder), steps=steps, batch_size=recipe.batch_size, seed=split,
                    gan=recipe.gan.to_dict(), checkpoint_every=recipe.checkpoint_every, guard=guard)  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=450)
    parser.add_argument("--split", type=int, default=41)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--preset", default="cpu-32")
    args = parser.parse_args()
    torch.set_num_threads(1)  # as in a 1-CPU Ray task
    cpu = torch.device("cpu")
    work = Path(tempfile.mkdtemp(prefix="guard-bench-"))
    try:
        train_split(job(args.split + 1, 50, True, work / "warm", args.preset), device=cpu)  # imports, oneDNN kernels
        seconds = {False: [], True: []}
        for _ in range(args.rounds):
            for guard in (False, True):
                start = time.perf_counter()
                train_split(job(args.split, args.steps, guard, work / str(guard), args.preset), device=cpu)
                seconds[guard].append(time.perf_counter() - start)

        # The parts, timed alone.
        the_job = job(args.split, args.steps, True, work / "parts", args.preset)
        config = GANConfig.from_dict({**the_job.gan, "num_classes": 10})
        data = load_split_images("builtin", the_job.classes, config.image_size)
        start = time.perf_counter()
        guard = QualityGuard(the_job, config, data.images, data.labels, cpu)
        classifier_s = time.perf_counter() - start
        sampler = GAN.build(config, cpu).sampler()
        checks = []
        for step in range(5):
            start = time.perf_counter()
            guard.keep_if_best(sampler, guard.check(sampler), step)
            checks.append(time.perf_counter() - start)
        checkpoints = len({*range(the_job.checkpoint_every, args.steps + 1, the_job.checkpoint_every), args.steps})
    finally:
        shutil.rmtree(work, ignore_errors=True)

    off, on = statistics.median(seconds[False]), statistics.median(seconds[True])
    check_s = statistics.median(checks)
    print(f"{args.preset}, split {args.split}, {args.steps} steps, {args.rounds} interleaved rounds, 1 thread, "
          f"bf16 autocast: {GAN.build(config, cpu).bf16}")  # fmt: skip
    print(f"train_split without the guard: {off:.2f} s (runs {', '.join(f'{s:.2f}' for s in seconds[False])})")
    print(f"train_split with the guard:    {on:.2f} s (runs {', '.join(f'{s:.2f}' for s in seconds[True])})")
    print(f"overhead: {on - off:+.2f} s, {100 * (on - off) / off:+.1f}%")
    print(f"  classifier, once per split: {classifier_s:.2f} s ({100 * classifier_s / off:.1f}% of the split)")
    print(f"  one check: {1000 * check_s:.0f} ms x {checkpoints} checkpoints = {checkpoints * check_s:.2f} s "
          f"({100 * checkpoints * check_s / off:.1f}% of the split)")  # fmt: skip


if __name__ == "__main__":
    main()
