"""What the pickle-free training state costs against torch.save: one split's full state
(G, D, both Adam optimisers with their moments, random states) written and read back,
on local disk, best of 5 each.

    python bench/state_format.py                       # cpu-32 and paper-64
    python bench/state_format.py --presets paper-128
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from workers.config import GANConfig  # noqa: E402
from workers.presets import get_preset  # noqa: E402
from workers.state_format import load_state, save_state  # noqa: E402
from workers.step import GAN  # noqa: E402
from workers.train import _snapshot, _Window  # noqa: E402


def snapshot_of(preset: str) -> dict:
    """A state as a checkpoint holds it, after one optimiser step (so Adam has moments)."""
    config = GANConfig.from_dict({**get_preset(preset).gan.to_dict(), "num_classes": 10})
    cpu = torch.device("cpu")
    gan = GAN.build(config, cpu)
    for p in [*gan.generator.parameters(), *gan.discriminator.parameters()]:
        p.grad = torch.zeros_like(p)
    gan.opt_g.step()
    gan.opt_d.step()
    return _snapshot(gan, torch.Generator(), _Window(cpu), cpu, step=1, seed=0, train_seconds=0.0, history=[])


def best_of(rounds: int, action) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", default="cpu-32,paper-64")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print("| preset | format | file | write | read |\n|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for preset in args.presets.split(","):
            state = snapshot_of(preset)
            formats = {
                "torch.save (before)": (lambda p: torch.save(state, p), lambda p: torch.load(p, weights_only=True)),
                "safetensors + JSON": (lambda p: save_state(state, p), load_state),
            }
            for name, (write, read) in formats.items():
                path = os.path.join(tmp, "state.pt")
                write_s = best_of(args.rounds, lambda: write(path))
                read_s = best_of(args.rounds, lambda: read(path))
                size = os.path.getsize(path) / 1e6
                print(f"| {preset} | {name} | {size:.1f} MB | {write_s * 1e3:.0f} ms | {read_s * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
