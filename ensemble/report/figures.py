"""The pictures of one split that `ensemble report` shows, as uint8 image grids.

The samples use `ensemble sample`'s noise (seed 0), so the report's first image of a class
is the one `ensemble sample --label L --n 1 --seed 0` writes. The interpolations are the
paper's two figures: noise interpolated within one class (what the latent code holds), and
fixed noise across the split's classes (what the label holds)."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from workers.model import Generator
from workers.images import generate, render, tile

MOSAIC_SAMPLES_PER_CLASS = 6
REAL_PER_CLASS = 6
INTERPOLATION_ROWS = 3
INTERPOLATION_STEPS = 8
FIXED_NOISE_ROWS = 4


@dataclass
class SplitFigures:
    firsts: list[torch.Tensor]
    """Per class, its first sample: (3, S, S) uint8, the report's mosaic tiles."""
    samples: torch.Tensor
    """(3, H, W) grid: a row per class, MOSAIC_SAMPLES_PER_CLASS samples each."""
    within_class: torch.Tensor
    """(3, H, W) grid: a row per class (the first INTERPOLATION_ROWS), noise interpolated left to right."""
    across_classes: torch.Tensor
    """(3, H, W) grid: a row per fixed noise, a column per class of the split."""


@torch.no_grad()
def split_figures(generator: Generator, num_classes: int, seed: int = 0) -> SplitFigures:
    per_class = [generate(generator, k, MOSAIC_SAMPLES_PER_CLASS, seed) for k in range(num_classes)]
    z_dim = generator.config.z_dim
    rng = torch.Generator().manual_seed(seed + 1)

    rows = min(INTERPOLATION_ROWS, num_classes)
    ends = torch.randn(2, rows, z_dim, generator=rng)
    weights = torch.linspace(0, 1, INTERPOLATION_STEPS).view(1, -1, 1)
    noise = ends[0].unsqueeze(1) * (1 - weights) + ends[1].unsqueeze(1) * weights  # (rows, steps, z)
    labels = torch.arange(rows).repeat_interleave(INTERPOLATION_STEPS)
    within = render(generator, noise.reshape(-1, z_dim), labels)

    fixed = torch.randn(FIXED_NOISE_ROWS, z_dim, generator=rng).repeat_interleave(num_classes, dim=0)
    across = render(generator, fixed, torch.arange(num_classes).repeat(FIXED_NOISE_ROWS))
    return SplitFigures(
        firsts=[images[0] for images in per_class],
        samples=tile(torch.cat(per_class), columns=MOSAIC_SAMPLES_PER_CLASS),
        within_class=tile(within, columns=INTERPOLATION_STEPS),
        across_classes=tile(across, columns=num_classes),
    )


def real_grid(images: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A row per class of its first REAL_PER_CLASS images (fewer when it has fewer)."""
    size = images.shape[-1]
    rows = []
    for k in range(num_classes):
        mine = images[labels == k][:REAL_PER_CLASS]
        blank = torch.zeros(REAL_PER_CLASS - len(mine), 3, size, size, dtype=torch.uint8)
        rows.append(torch.cat([mine, blank]))
    return tile(torch.cat(rows), columns=REAL_PER_CLASS)
