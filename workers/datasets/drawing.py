"""Drawing the built-in classes with tensor ops: a whole class's images at once."""
from __future__ import annotations

import math

import torch

from workers.datasets.builtin import FOREGROUNDS, IMAGE_SIZE, NUM_CLASSES, TINTS

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


def _shape_distance(fg: int, u: torch.Tensor, v: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """Approximate signed distance to shape `fg` (negative inside), centred coordinates."""
    a, b = u.abs(), v.abs()
    box = torch.maximum(a, b)
    if fg == 0:
        return torch.sqrt(u * u + v * v) - r
    if fg == 1:
        return box - r * 0.85
    if fg == 2:
        return torch.maximum(v - 0.8 * r, a - (v + r) * 0.6)
    if fg == 3:
        return (a + b) / 1.2 - r
    if fg == 4:
        return torch.minimum(torch.maximum(a - r * 0.4, b - r), torch.maximum(b - r * 0.4, a - r))
    if fg == 5:
        d = torch.sqrt(u * u + v * v)
        return torch.maximum(d - r, r * 0.55 - d)
    if fg == 6:
        return torch.maximum(a - r * 1.15, b - r * 0.38)
    if fg == 7:
        return torch.maximum(b - r * 1.15, a - r * 0.38)
    if fg == 8:
        diagonals = torch.minimum((u - v).abs(), (u + v).abs()) / math.sqrt(2) - r * 0.33
        return torch.maximum(diagonals, box - r * 0.95)
    return torch.maximum(box - r, r * 0.45 - box)


def _background(style: int, x: torch.Tensor, y: torch.Tensor, jitter: torch.Tensor) -> torch.Tensor:
    """Pattern in [0, 1]: 1 is the tint, 0 a darker shade of it."""
    if style == 0:
        return torch.full_like(x, 0.8)
    if style == 1:
        return ((x + 1) / 2 + jitter).clamp(0, 1)
    if style == 2:
        return ((y + 1) / 2 + jitter).clamp(0, 1)
    if style == 3:
        return ((x + y + 2) / 4 + jitter).clamp(0, 1)
    if style == 4:
        return ((x - y + 2) / 4 + jitter).clamp(0, 1)
    radius = torch.sqrt(x * x + y * y) / 1.2
    if style == 5:
        return (1 - radius + jitter).clamp(0, 1)
    if style == 6:
        return (radius + jitter).clamp(0, 1)
    if style == 7:
        return (x > jitter).float()
    if style == 8:
        return (y > jitter).float()
    return (torch.maximum(x.abs(), y.abs()) < 0.7 + jitter).float()


def render_class(label: int, count: int, first_index: int = 0) -> torch.Tensor:
    """Images first_index .. first_index+count-1 of class `label`: (count, 3, 32, 32) uint8."""
    if not 0 <= label < NUM_CLASSES:
        raise ValueError(f"label must be in [0, {NUM_CLASSES}), got {label}")
    # One generator per (class, block) keeps image i of a class the same however it is asked for.
    g = torch.Generator().manual_seed(1_000_003 * label + first_index)
    n = count
    style, tint, fg = label // 100, (label // 10) % 10, label % 10
    coords = (torch.arange(IMAGE_SIZE) + 0.5) / IMAGE_SIZE * 2 - 1
    y = coords.view(1, IMAGE_SIZE, 1).expand(n, IMAGE_SIZE, IMAGE_SIZE)
    x = coords.view(1, 1, IMAGE_SIZE).expand(n, IMAGE_SIZE, IMAGE_SIZE)

    def uniform(low: float, high: float, *shape: int) -> torch.Tensor:
        return low + (high - low) * torch.rand(n, *shape, generator=g)

    _, tint_hue, tint_sat = TINTS[tint]
    pattern = _background(style, x, y, uniform(-0.15, 0.15, 1, 1))
    light = _hsv_to_rgb(
        (tint_hue + uniform(-0.01, 0.01)) % 1, torch.full((n,), tint_sat), uniform(0.42, 0.5)
    )
    dark = light * 0.45
    image = dark.view(n, 3, 1, 1) + (light - dark).view(n, 3, 1, 1) * pattern.unsqueeze(1)

    cx, cy = uniform(-0.15, 0.15, 1, 1), uniform(-0.15, 0.15, 1, 1)
    radius = uniform(0.5, 0.62, 1, 1)
    mask = torch.sigmoid(-_shape_distance(fg, x - cx, y - cy, radius) / 0.035).unsqueeze(1)
    _, _, fg_hue, fg_sat = FOREGROUNDS[fg]
    colour = _hsv_to_rgb(
        (fg_hue + uniform(-0.015, 0.015)) % 1, fg_sat + uniform(0.0, 0.08), uniform(0.92, 1.0)
    )
    image = image * (1 - mask) + colour.view(n, 3, 1, 1) * mask
    image = image + 0.015 * torch.randn(image.shape, generator=g)
    return (image.clamp(0, 1) * 255).round().to(torch.uint8)
