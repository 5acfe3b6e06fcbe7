"""Do a run's samples look like their class? The paper's "discriminability", offline.

Trains a classifier on the real built-in data (all 1000 classes; cached under bench/out/),
then samples labels through the same routing and checkpoints as `ensemble sample`, and
reports, per label, the share of samples the classifier assigns to that label.

    python bench/quality.py --run ensemble-run                # 10 labels spread over 1000
    python bench/quality.py --run ensemble-run --labels all   # every label
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from ensemble.routing import Router  # noqa: E402
from manifests.run_dir import RunDir  # noqa: E402
from workers.checkpoints import load_generator  # noqa: E402
from workers.datasets.palette import NUM_CLASSES  # noqa: E402
from workers.datasets.drawing import render_class  # noqa: E402
from workers.images import generate  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
SPREAD_LABELS = [7, 123, 250, 417, 502, 588, 666, 731, 864, 999]
HELD_OUT_INDEX = 100_000  # real test images start here; training images start at 0


def classifier(num_classes: int) -> nn.Module:
    def block(cin: int, cout: int) -> list[nn.Module]:
        return [nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

    return nn.Sequential(
        *block(3, 32), nn.MaxPool2d(2), *block(32, 64), nn.MaxPool2d(2), *block(64, 128),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, num_classes),
    )  # fmt: skip


def to_input(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1


def data_fingerprint() -> str:
    """Changes whenever the built-in drawing does, so a stale cached classifier is not reused."""
    sample = torch.cat([render_class(label, 2) for label in (0, 417, 999)])
    return hashlib.sha1(sample.numpy().tobytes()).hexdigest()[:10]


def train_classifier(per_class: int, epochs: int) -> nn.Module:
    path = OUT / f"classifier-{data_fingerprint()}-{per_class}x{epochs}.pt"
    model = classifier(NUM_CLASSES)
    if path.exists():
        model.load_state_dict(torch.load(path, weights_only=True))
        return model.eval()
    start = time.time()
    images = torch.cat([render_class(c, per_class) for c in range(NUM_CLASSES)])
    labels = torch.arange(NUM_CLASSES).repeat_interleave(per_class)
    optimiser = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = epochs * len(images) // 256
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=4e-3, total_steps=steps)
    model.train()
    for step in range(steps):
        index = torch.randint(0, len(images), (256,))
        loss = F.cross_entropy(model(to_input(images[index])), labels[index])
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if step % 200 == 0:
            print(f"  classifier step {step}/{steps} loss {loss.item():.3f}", flush=True)
    model.eval()
    OUT.mkdir(exist_ok=True)
    torch.save(model.state_dict(), path)
    print(f"  classifier trained in {time.time() - start:.0f} s")
    return model


@torch.no_grad()
def accuracy_on(model: nn.Module, images: torch.Tensor, label: int) -> float:
    return (model(to_input(images)).argmax(1) == label).float().mean().item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", default="ensemble-run")
    parser.add_argument("--labels", default="spread", help="`spread` (10 labels), `all`, or comma-separated")
    parser.add_argument("--n", type=int, default=100, help="samples per label")
    parser.add_argument("--per-class", type=int, default=100, help="real training images per class")
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    torch.set_num_threads(2)

    labels = {"spread": SPREAD_LABELS, "all": list(range(NUM_CLASSES))}.get(args.labels)
    labels = labels or [int(x) for x in args.labels.split(",")]
    model = train_classifier(args.per_class, args.epochs)
    router = Router(RunDir(args.run).read_manifest())
    rows = []
    for label in labels:
        route = router.resolve(label)
        generator, info = load_generator(Path(args.run) / (route.record.best_checkpoint or route.record.checkpoint))
        fake = generate(generator, route.local_label, args.n, seed=12345)
        real = render_class(label, args.n, first_index=HELD_OUT_INDEX)
        rows.append({"label": label, "name": route.class_name, "split": route.record.split, "step": info.step,
                     "fake_accuracy": accuracy_on(model, fake, label),
                     "real_accuracy": accuracy_on(model, real, label)})  # fmt: skip
    print(f"{'label':>5}  {'split':>5}  {'step':>5}  {'samples':>7}  {'real':>5}  name")
    for r in rows:
        print(f"{r['label']:>5}  {r['split']:>5}  {r['step']:>5}  {r['fake_accuracy']:>7.0%}  "
              f"{r['real_accuracy']:>5.0%}  {r['name']}")  # fmt: skip
    worst = min(r["fake_accuracy"] for r in rows)
    mean = sum(r["fake_accuracy"] for r in rows) / len(rows)
    print(f"samples classified as their label: mean {mean:.1%}, worst label {worst:.1%} "
          f"({len(rows)} labels x {args.n} samples, 1000-way classifier)")  # fmt: skip
    OUT.mkdir(exist_ok=True)
    (OUT / "quality.json").write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
