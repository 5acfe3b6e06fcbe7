"""Generating images from a trained generator, and encoding them (PNG files, image bytes)."""
from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Callable

import torch

from workers.model import Generator


class Abandoned(Exception):
    """Generation stopped between two passes because its caller no longer wants the images."""


@torch.no_grad()
def generate(generator: Generator, local_label: int, count: int, seed: int,
             abandoned: Callable[[], bool] | None = None) -> torch.Tensor:  # fmt: skip
    """`count` images of local class `local_label`: (count, C, S, S) uint8, reproducible by seed.
    `abandoned` is asked before each pass; when it says so, Abandoned is raised."""
    rng = torch.Generator().manual_seed(seed)
    device = next(generator.parameters()).device
    noise = torch.randn(count, generator.config.z_dim, generator=rng).to(device)
    labels = torch.full((count,), local_label, dtype=torch.long, device=device)
    return render(generator, noise, labels, abandoned)


RENDER_CHUNK_PIXELS = 64 * 128 * 128
"""Pixels per generator pass: 64 images at 128 px, 256 at 64 px, 1024 at 32 px. A paper-128
generator's pass over 64 images peaked at 0.65 GB on CPU and over 256 at 2.3 GB, so `sample
--n 10000` in one pass would need ~90 GB. The generator is in eval mode wherever it renders,
so chunks give the same images as one pass."""


@torch.no_grad()
def render(generator: Generator, noise: torch.Tensor, labels: torch.Tensor,
           abandoned: Callable[[], bool] | None = None) -> torch.Tensor:  # fmt: skip
    """G(noise, labels) as (N, C, S, S) uint8 on the CPU, a bounded chunk per pass; stops with
    Abandoned before a pass when `abandoned()` is true (a served request its client left)."""
    device = next(generator.parameters()).device
    chunk = max(1, RENDER_CHUNK_PIXELS // generator.config.image_size**2)
    chunks = []
    for start in range(0, max(len(noise), 1), chunk):
        if abandoned is not None and abandoned():
            raise Abandoned(f"stopped after {start} of {len(noise)} images")
        images = generator(noise[start : start + chunk].to(device), labels[start : start + chunk].to(device))
        chunks.append(images.add(1.0).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu())
    return chunks[0] if len(chunks) == 1 else torch.cat(chunks)


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


def to_pil(image: torch.Tensor):
    """A (C, H, W) uint8 tensor as a PIL image."""
    from PIL import Image

    return Image.fromarray(image.permute(1, 2, 0).numpy())


def encode(image: torch.Tensor, format: str = "PNG", **options) -> bytes:
    """A (C, H, W) uint8 tensor as the bytes of an image file (PIL's format names and options)."""
    buffer = io.BytesIO()
    to_pil(image).save(buffer, format=format, **options)
    return buffer.getvalue()


def write_png(image: torch.Tensor, path: Path, scale: int = 1) -> None:
    from PIL import Image

    picture = to_pil(image)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)
    picture.save(path)
