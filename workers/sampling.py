"""Generating images of one class from a trained generator, and writing them as PNG."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from workers.model import Generator


@torch.no_grad()
def generate(generator: Generator, local_label: int, count: int, seed: int) -> torch.Tensor:
    """`count` images of local class `local_label`: (count, C, S, S) uint8, reproducible by seed."""
    rng = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    noise = torch.randn(count, generator.config.z_dim, generator=rng).to(device)
    labels = torch.full((count,), local_label, dtype=torch.long, device=device)
    images = generator(noise, labels)
    return images.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu()


def tile(images: torch.Tensor, padding: int = 2, columns: int | None = None) -> torch.Tensor:
    """(N, C, S, S) -> one (C, H, W) grid with dark gaps: `columns` wide, or as square as N allows."""
    count, channels, size, _ = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    cell = size + padding
    grid = torch.zeros(channels, rows * cell + padding, columns * cell + padding, dtype=images.dtype)
    for i, image in enumerate(images):
        top, left = padding + (i // columns) * cell, padding + (i % columns) * cell
        grid[:, top : top + size, left : left + size] = image
    return grid


def write_png(image: torch.Tensor, path: Path, scale: int = 1) -> None:
    from PIL import Image

    picture = Image.fromarray(image.permute(1, 2, 0).numpy())
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
