"""What a dataset hands the trainer: one split's images, in memory."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


@dataclass
class LoadedImages:
    images: "torch.Tensor"
    """(N, C, S, S) uint8."""
    labels: "torch.Tensor"
    """(N,) int64 local labels: 0..K-1, the position of each image's class in the split."""
    skipped: int
    """Files that could not be decoded and were left out."""
