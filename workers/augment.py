"""DiffAugment (Zhao et al., NeurIPS 2020): random, differentiable transforms applied to
every image D sees, real and fake alike, in both D's and G's steps. With ~13k images per
split, it keeps D from memorising the real set. Images are in [-1, 1]; randomness comes
from torch's global generator, which checkpoints save, so resume stays exact.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def _color(x: torch.Tensor) -> torch.Tensor:
    b = x.shape[0]
    x = x + (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) - 0.5)  # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) * 2) + mean  # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (torch.rand(b, 1, 1, 1, device=x.device, dtype=x.dtype) + 0.5) + mean  # contrast


def _translation(x: torch.Tensor, ratio: float = 0.125) -> torch.Tensor:
    """Shift each image by up to `ratio` of its side, filling with zeros."""
    b, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sy, sy + 1, (b, 1), device=x.device)
    dx = torch.randint(-sx, sx + 1, (b, 1), device=x.device)
    padded = F.pad(x, (sx, sx, sy, sy))
    rows = (torch.arange(h, device=x.device) + sy - dy)[:, :, None]  # (B, H, 1)
    cols = (torch.arange(w, device=x.device) + sx - dx)[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=x.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def _cutout(x: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """Zero one square of `ratio` of the side per image, at a random centre."""
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + 1 - ch % 2, (b, 1, 1), device=x.device) - ch // 2
    left = torch.randint(0, w + 1 - cw % 2, (b, 1, 1), device=x.device) - cw // 2
    ys = torch.arange(h, device=x.device)[None, :, None]
    xs = torch.arange(w, device=x.device)[None, None, :]
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


_POLICIES = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policies: tuple[str, ...]) -> torch.Tensor:
    for name in policies:
        x = _POLICIES[name](x)
    return x.contiguous(memory_format=torch.channels_last)
