"""Training-step throughput: our per-split step vs the loop popular public AC-GAN ports write.

    python bench/train_step.py                         # CPU: cpu-32 and cifar-32, 1 thread
    python bench/train_step.py --presets paper-64,paper-128 --device cuda

Both sides train the same architecture (the preset's Generator and Discriminator) at the
same batch size on the same uint8 images held in memory, with the same torch threads.
The anchor is written the way popular public ports write it: models in the default memory
layout, sigmoid + BCELoss and cross-entropy, the G step then a D step with two separate D
passes (real, fake), and numpy copies for accuracy plus `.item()` for the log every step.
Rounds alternate between the two (which goes first alternates too), so drift in the
machine's speed hits both; the table gives the median images/s and the median of the
per-round ratios. FLOPs per step are counted once with torch's FlopCounterMode; on a GPU
whose peak is known the table also gives MFU (achieved FLOP/s / the GPU's dense peak).
"""
from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from manifests.tables.history import METRICS  # noqa: E402
from workers.model import Discriminator, Generator  # noqa: E402
from workers.presets import get_preset  # noqa: E402
from workers.step import GAN, draw_batch, train_step  # noqa: E402

# Dense peak FLOP/s (no sparsity) by GPU name and precision, from NVIDIA's datasheets.
PEAK_FLOPS = {
    ("H100", "bf16"): 989e12, ("H100", "fp32"): 494e12,  # fp32 matmuls run as TF32 when allowed
    ("H200", "bf16"): 989e12, ("H200", "fp32"): 494e12,
    ("A100", "bf16"): 312e12, ("A100", "fp32"): 156e12,
}  # fmt: skip


class PublicPortLoop:
    """The anchor: one training step as the popular public AC-GAN ports write it."""

    def __init__(self, config, device, images: torch.Tensor, labels: torch.Tensor, batch_size: int):
        self.config, self.device, self.batch_size = config, device, batch_size  # config.precision: fp32
        self.generator = Generator(config).to(device)
        self.discriminator = Discriminator(config).to(device)
        betas = (config.beta1, config.beta2)
        self.opt_g = torch.optim.Adam(self.generator.parameters(), lr=config.lr, betas=betas)
        self.opt_d = torch.optim.Adam(self.discriminator.parameters(), lr=config.lr, betas=betas)
        self.bce, self.ce = nn.BCELoss(), nn.CrossEntropyLoss()
        self.images = images.float().div(127.5).sub(1.0)  # the port's dataset yields normalised floats
        self.labels = labels
        self.log: list[tuple[float, float, float]] = []

    def step(self) -> None:
        b, k = self.batch_size, self.config.num_classes
        index = torch.randint(0, len(self.images), (b,), device=self.device)
        real, labels = self.images[index], self.labels[index]
        valid = torch.ones(b, device=self.device)
        fake_target = torch.zeros(b, device=self.device)
        z = torch.randn(b, self.config.z_dim, device=self.device)
        gen_labels = torch.randint(0, k, (b,), device=self.device)

        self.opt_g.zero_grad()
        gen_images = self.generator(z, gen_labels)
        judged = self.discriminator(gen_images)
        g_loss = 0.5 * (self.bce(torch.sigmoid(judged.source), valid) + self.ce(judged.classes, gen_labels))
        g_loss.backward()
        self.opt_g.step()

        self.opt_d.zero_grad()
        on_real = self.discriminator(real)
        d_real_loss = (self.bce(torch.sigmoid(on_real.source), valid) + self.ce(on_real.classes, labels)) / 2
        on_fake = self.discriminator(gen_images.detach())
        d_fake_loss = (self.bce(torch.sigmoid(on_fake.source), fake_target) + self.ce(on_fake.classes, gen_labels)) / 2
        d_loss = (d_real_loss + d_fake_loss) / 2
        pred = np.concatenate([on_real.classes.data.cpu().numpy(), on_fake.classes.data.cpu().numpy()], axis=0)
        truth = np.concatenate([labels.data.cpu().numpy(), gen_labels.data.cpu().numpy()], axis=0)
        d_acc = float(np.mean(np.argmax(pred, axis=1) == truth))
        d_loss.backward()
        self.opt_d.step()
        self.log.append((d_loss.item(), g_loss.item(), d_acc))


class OurStep:
    """Our trainer's step (workers/step.py) with its batch drawing, as train_split runs it."""

    def __init__(self, config, device, images: torch.Tensor, labels: torch.Tensor, batch_size: int):
        self.config, self.images, self.labels, self.batch_size = config, images, labels, batch_size
        self.gan = GAN.build(config, device)
        self.gan.generator.train()
        self.gan.discriminator.train()
        self.rng = torch.Generator().manual_seed(0)
        self.sums = torch.zeros(len(METRICS), dtype=torch.float64, device=device)  # what train_split keeps per step

    def step(self) -> None:
        batch = draw_batch(self.images, self.labels, self.batch_size, self.config.z_dim, self.config.num_classes,
                           self.rng)  # fmt: skip
        self.sums += train_step(self.gan, batch)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_round(loop, steps: int, device: torch.device) -> float:
    """Images per second over `steps` steps."""
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        loop.step()
    sync(device)
    return steps * loop.batch_size / (time.perf_counter() - start)


def flops_per_step(loop) -> int:
    with FlopCounterMode(display=False) as counter:
        loop.step()
    return counter.get_total_flops()


def peak_flops(device: torch.device, precision: str) -> float | None:
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for (gpu, p), peak in PEAK_FLOPS.items() if gpu in name and p == precision), None)


def bench_preset(name: str, args, device: torch.device) -> list[dict]:
    """One row per variant of ours, each with its median ratio to the public-port loop."""
    preset = get_preset(name)
    batch = args.batch_size or preset.batch_size
    torch.manual_seed(0)
    size = preset.gan.image_size
    images = torch.randint(0, 256, (args.images, 3, size, size), dtype=torch.uint8, device=device)
    labels = torch.randint(0, preset.gan.num_classes, (args.images,), device=device)
    loops = {"public port": PublicPortLoop(preset.gan, device, images, labels, batch)}
    for precision in args.precisions.split(","):
        config = dataclasses.replace(preset.gan, precision=precision)
        loops[f"ours {precision}"] = OurStep(config, device, images, labels, batch)
    for loop in loops.values():
        for _ in range(args.warmup):
            loop.step()
    speeds: dict[str, list[float]] = {key: [] for key in loops}
    for round_index in range(args.rounds):
        order = list(loops) if round_index % 2 == 0 else list(loops)[::-1]
        for key in order:
            speeds[key].append(timed_round(loops[key], args.steps, device))
    rows = []
    for key, loop in loops.items():
        ratios = [mine / port for mine, port in zip(speeds[key], speeds["public port"])]
        flops = flops_per_step(loop)
        speed = statistics.median(speeds[key])
        achieved = flops * speed / batch
        peak = peak_flops(device, getattr(loop, "config", preset.gan).precision)
        rows.append({
            "preset": name, "loop": key, "batch": batch, "images_per_s": speed,
            "ratio": statistics.median(ratios), "ratio_range": (min(ratios), max(ratios)),
            "gflop_per_step": flops / 1e9, "tflops": achieved / 1e12, "mfu": achieved / peak if peak else None,
        })  # fmt: skip
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", help="comma-separated (default: cpu-32,cifar-32 on CPU; paper-64,paper-128 on CUDA)")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (a split with 1 CPU uses 1)")
    parser.add_argument("--batch-size", type=int, help="default: the preset's")
    parser.add_argument("--precisions", default="fp32,bf16", help="variants of ours to time (GANConfig.precision)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--steps", type=int, default=10, help="steps per timed round")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--images", type=int, default=2000, help="images held in memory")
    args = parser.parse_args()
    device = torch.device(args.device)
    torch.set_num_threads(args.threads)
    default = "paper-64,paper-128" if device.type == "cuda" else "cpu-32,cifar-32"
    names = (args.presets or default).split(",")

    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu, {args.threads} thread(s)"
    print(f"device: {where}; torch {torch.__version__}; {args.rounds} interleaved rounds x {args.steps} steps")
    print(f"{'preset':<10} {'loop':<12} {'batch':>5} {'img/s':>9} {'vs port':>8} {'(min-max)':>11} "
          f"{'GFLOP/step':>10} {'TFLOP/s':>8} {'MFU':>6}")  # fmt: skip
    for name in names:
        for r in bench_preset(name, args, device):
            mfu = f"{r['mfu']:.1%}" if r["mfu"] is not None else "-"
            low, high = r["ratio_range"]
            print(f"{r['preset']:<10} {r['loop']:<12} {r['batch']:>5} {r['images_per_s']:>9.1f} {r['ratio']:>7.2f}x "
                  f"{low:>5.2f}-{high:<5.2f} {r['gflop_per_step']:>10.2f} {r['tflops']:>8.3f} {mfu:>6}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
