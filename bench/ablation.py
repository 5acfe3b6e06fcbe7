"""Train a few splits with a config change and score their samples: how model choices were made.

    python bench/ablation.py                              # the cpu-32 preset as it is
    python bench/ablation.py --set g_ema=0                # ... without the weight average
    python bench/ablation.py --set g_upsample=transpose --steps 600 --splits 0,12,25

Trains each split with the plain training function (two processes, one thread each, as
two 1-CPU Ray tasks would), then scores every class of those splits with bench/quality.py's
1000-way classifier: the share of 50 samples per label classified as that label.
The default splits are a validation set kept apart from quality.py's ten test labels.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

VALIDATION_SPLITS = "3,17,29,35,44,61,78,82,90,95"


def parse_value(text: str):
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def train_one(split: int, steps: int, batch_size: int, overrides: dict, root: str) -> float:
    import torch

    from workers.config import TrainJob
    from workers.presets import cpu_32
    from workers.datasets.builtin import CLASS_NAMES
    from workers.train import train_split

    torch.set_num_threads(1)
    classes = list(range(split * 10, split * 10 + 10))
    job = TrainJob(split=split, classes=classes, class_names=[CLASS_NAMES[c] for c in classes], data="builtin",
                   split_dir=f"{root}/splits/{split:03d}", steps=steps, batch_size=batch_size, seed=split,
                   gan={**cpu_32().gan.to_dict(), **overrides}, checkpoint_every=steps)  # fmt: skip
    return train_split(job).train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="GANConfig override")
    parser.add_argument("--steps", type=int, default=450)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--splits", default=VALIDATION_SPLITS)
    args = parser.parse_args()
    overrides = {k: parse_value(v) for k, v in (item.split("=", 1) for item in args.set)}
    splits = [int(s) for s in args.splits.split(",")]
    root = tempfile.mkdtemp(prefix="ablation-")

    start = time.time()
    with ProcessPoolExecutor(2) as pool:
        seconds = list(pool.map(train_one, splits, [args.steps] * len(splits), [args.batch_size] * len(splits),
                                [overrides] * len(splits), [root] * len(splits)))  # fmt: skip
    wall = time.time() - start

    import torch

    from quality import accuracy_on, train_classifier
    from workers.checkpoints import load_generator
    from workers.images import generate

    torch.set_num_threads(2)
    classifier = train_classifier(per_class=100, epochs=4)
    scores = []
    for split in splits:
        generator, _ = load_generator(Path(root) / "splits" / f"{split:03d}" / "generator.safetensors")
        for local in range(10):
            scores.append(accuracy_on(classifier, generate(generator, local, 50, seed=12345), split * 10 + local))
    print(f"overrides {overrides or 'none'}, {args.steps} steps x batch {args.batch_size}, splits {args.splits}")
    print(f"mean in-task seconds per split {sum(seconds) / len(seconds):.2f} (wall {wall:.0f} s)")
    print(f"samples classified as their label: mean {sum(scores) / len(scores):.1%}, "
          f"labels at >= 90%: {sum(s >= 0.9 for s in scores)}/{len(scores)}")  # fmt: skip


if __name__ == "__main__":
    main()
