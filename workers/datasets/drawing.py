"""Drawing the built-in classes with tensor ops: a whole class's images at once."""
from __future__ import annotations

import math

import torch

from workers.datasets.palette import FOREGROUNDS, IMAGE_SIZE, NUM_CLASSES, TINTS

def _hsv_to_rgb(h: torch.Tensor, s: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(N,) hue, saturation, value in [0, 1] -> (N, 3) RGB."""
    i = torch.floor(h * 6).long() % 6
    f = h * 6 - torch.floor(h * 6)
    p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
    candidates = torch.stack(
        [
            torch.stack([v, t, p], 1), torch.stack([q, v, p], 1), torch.stack([p, v, t], 1),
            torch.stack([p, q, v], 1), torch.stack([t, p, v], 1), torch.stack([v, p, q], 1),
        ]
    )  # fmt: skip
    return candidates[i, torch.arange(h.shape[0])]


def _shape_distance(shape: str, u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance to `shape` (negative inside), in centred coordinates."""
    a, b = u.abs(), v.abs()
    box = torch.maximum(a, b)
    disc = torch.sqrt(u * u + v * v)
    diagonals = torch.minimum((u - v).abs(), (u + v).abs()) / math.sqrt(2)
    distances = {
        "circle": lambda: disc - r,
        "square": lambda: box - r * 0.85,
        "triangle": lambda: torch.maximum(v - 0.8 * r, a - (v + r) * 0.6),
        "diamond": lambda: (a + b) / 1.2 - r,
        "plus": lambda: torch.minimum(torch.maximum(a - r * 0.4, b - r), torch.maximum(b - r * 0.4, a - r)),
        "ring": lambda: torch.maximum(disc - r, r * 0.55 - disc),
        "bar": lambda: torch.maximum(a - r * 1.15, b - r * 0.38),
        "column": lambda: torch.maximum(b - r * 1.15, a - r * 0.38),
        "cross": lambda: torch.maximum(diagonals - r * 0.4, box - r * 0.95),
        "frame": lambda: torch.maximum(box - r, r * 0.45 - box),
    }
    return distances[shape]()


def _background(style: int, x: torch.Tensor, y: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """Pattern in {0, 1}: 1 is the tint, 0 a darker shade of it. Bold, large-scale layouts
    whose boundaries move a little from image to image (`jitter`)."""
    box = torch.maximum(x.abs(), y.abs())
    layouts = {
        0: lambda: torch.ones_like(x),  # plain
        1: lambda: (x > jitter).float(),  # halves: dark left
        2: lambda: (y > jitter).float(),  # tiers: dark top
        3: lambda: (box < 0.7 + jitter).float(),  # frame: dark border
        4: lambda: (box > 0.7 + jitter).float(),  # window: dark centre
        5: lambda: ((x > jitter) == (y > jitter)).float(),  # quarters
        6: lambda: ((y - jitter).abs() > 0.35).float(),  # band: dark horizontal band
        7: lambda: ((x - jitter).abs() > 0.35).float(),  # pillar: dark vertical band
        8: lambda: 1.0 - ((x < jitter) & (y < jitter)).float(),  # corner: dark top-left
        9: lambda: torch.full_like(x, 0.5),  # dim: all half-dark
    }
    return layouts[style]()


def render_class(label: int, count: int, first_index: int = 0) -> torch.Tensor:
    """`count` images of class `label`: (count, 3, 32, 32) uint8.

    The same (label, count, first_index) always gives the same images; a different
    first_index gives a different, equally deterministic set (used for held-out images).
    """
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label must be in [0, {NUM_CLASSES}), got {label}")
    g = torch.Generator().manual_seed(1_000_003 * label + first_index)
    n = count
    style, tint, fg = label // 100, (label // 10) % 10, label % 10
    coords = (torch.arange(IMAGE_SIZE) + 0.5) / IMAGE_SIZE * 2 - 1
    y = coords.view(1, IMAGE_SIZE, 1).expand(n, IMAGE_SIZE, IMAGE_SIZE)
    x = coords.view(1, 1, IMAGE_SIZE).expand(n, IMAGE_SIZE, IMAGE_SIZE)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=g)

    _, tint_hue, tint_sat = TINTS[tint]
    pattern = _background(style, x, y, uniform(-0.06, 0.06, 1, 1))
    light = _hsv_to_rgb(
        (tint_hue + uniform(-0.01, 0.01)) % 1, torch.full((n,), tint_sat), uniform(0.42, 0.5)
    )
    dark = light * 0.3
    image = dark.view(n, 3, 1, 1) + (light - dark).view(n, 3, 1, 1) * pattern.unsqueeze(1)

    cx, cy = uniform(-0.1, 0.1, 1, 1), uniform(-0.1, 0.1, 1, 1)
    radius = uniform(0.52, 0.6, 1, 1)
    _, shape, fg_hue, fg_sat = FOREGROUNDS[fg]
    mask = torch.sigmoid(-_shape_distance(shape, x - cx, y - cy, radius) / 0.035).unsqueeze(1)
    colour = _hsv_to_rgb(
        (fg_hue + uniform(-0.015, 0.015)) % 1, fg_sat + uniform(0.0, 0.08), uniform(0.92, 1.0)
    )
    image = image * (1 - mask) + colour.view(n, 3, 1, 1) * mask
    image = image + 0.015 * torch.randn(image.shape, generator=g)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)
