"""The measures of a class's samples, each a small function of tensors: spread (mean pairwise
distance), how many near-copies samples hold, a generator's quality score, MS-SSIM of same-class pairs, FID and KID in any
feature space, and distance to the nearest training image.

Metrics come from torchmetrics (MS-SSIM, FID, KID): tested implementations, and FID/KID take
any feature extractor, so nothing is downloaded.

MS-SSIM at small sizes: torchmetrics needs side > (kernel - 1) * 2**(scales - 1). We keep the
7x7 Gaussian window and use as many of the standard five scales (their betas renormalised
to sum to 1) as the side allows: 3 at 32 px, 4 at 64 px, 5 at 128 px and above.
"""
from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn as nn

MS_SSIM_KERNEL = 7
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_PAIRS = 100
"""Random same-class pairs per class, as in the paper."""
def mean_distance(batch: torch.Tensor) -> float:
    """Mean Euclidean distance between distinct items of a batch (0 for fewer than two)."""
    flat = batch.flatten(1).double()
    if len(flat) < 2:
        return 0.0
    return (torch.cdist(flat, flat).sum() / (len(flat) * (len(flat) - 1))).item()


class ClassScore(NamedTuple):
    """What the guard measures of one class's samples (workers/quality/yardstick.py)."""

    accuracy: float
    diversity: float
    distinctness: float


def nearest_to_spread(batch: torch.Tensor) -> float:
    """How far each item lies from its nearest other item, on average, over the batch's mean
    pairwise distance: low when items come in near-copies, whatever the batch's overall spread.
    0 for fewer than two items, or for copies of one."""
    flat = batch.flatten(1).double()
    if len(flat) < 2:
        return 0.0
    distances = torch.cdist(flat, flat)
    spread = distances.sum() / (len(flat) * (len(flat) - 1))
    if spread < 1e-3:  # copies of one item (up to rounding): no neighbour is nearer than another
        return 0.0
    nearest = distances.fill_diagonal_(float("inf")).min(dim=1).values.mean()
    return (nearest / spread).item()


def quality_score(scores: list[ClassScore]) -> float:
    """One number per generator, higher is better: the mean over classes of
    accuracy x min(1, diversity). The best checkpoint is the one that maximises it."""
    return sum(s.accuracy * min(1.0, s.diversity) for s in scores) / len(scores)


def ms_ssim_scales(side: int) -> int:
    scales = 5
    while scales > 1 and (MS_SSIM_KERNEL - 1) * 2 ** (scales - 1) >= side:
        scales -= 1
    return scales


def mean_ms_ssim(images: torch.Tensor, pairs: int, seed: int) -> float | None:
    """Mean MS-SSIM of `pairs` random pairs of distinct images (uint8), None for fewer than two."""
    from torchmetrics.functional.image import multiscale_structural_similarity_index_measure as ms_ssim

    if len(images) < 2:
        return None
    rng = torch.Generator().manual_seed(seed)
    first = torch.randint(0, len(images), (pairs,), generator=rng)
    second = (first + torch.randint(1, len(images), (pairs,), generator=rng)) % len(images)  # never the same one
    scales = ms_ssim_scales(images.shape[-1])
    betas = MS_SSIM_BETAS[:scales]
    betas = tuple(b / sum(betas) for b in betas)
    values = ms_ssim(images[first].float() / 255, images[second].float() / 255, data_range=1.0,
                     kernel_size=MS_SSIM_KERNEL, betas=betas, normalize="relu", reduction="none")  # fmt: skip
    return values.mean().item()


class _Given(nn.Module):
    """A 'feature extractor' for torchmetrics that returns its input: features computed once."""

    def __init__(self, num_features: int):
        super().__init__()
        self.num_features = num_features

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return features


def fid(real: torch.Tensor, fake: torch.Tensor) -> float | None:
    """FID between two sets of features; None with no more samples than dimensions (the
    covariance would be singular)."""
    from torchmetrics.image.fid import FrechetInceptionDistance

    dim = real.shape[1]
    if min(len(real), len(fake)) <= dim:
        return None
    metric = FrechetInceptionDistance(feature=_Given(dim), normalize=True)
    metric.set_dtype(torch.float64)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    return max(0.0, metric.compute().item())


def kid(real: torch.Tensor, fake: torch.Tensor) -> float | None:
    """KID (the mean over 50 subsets) between two sets of features; None for fewer than two."""
    import warnings

    from torchmetrics.image.kid import KernelInceptionDistance

    subset = min(100, len(real), len(fake))
    if subset < 2:
        return None
    warnings.filterwarnings("ignore", message=".*will save all extracted features in buffer.*")
    metric = KernelInceptionDistance(feature=_Given(real.shape[1]), subsets=50, subset_size=subset, normalize=True)
    metric.update(real.double(), real=True)
    metric.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):  # its random subsets: the same figure on every run
        torch.manual_seed(0)
        return metric.compute()[0].item()


def nearest_distance(queries: torch.Tensor, references: torch.Tensor) -> float:
    """Mean distance from each query image to its nearest reference image (uint8 images,
    pixels scaled to [0, 1])."""
    q = queries.flatten(1).float() / 255
    nearest = torch.full((len(q),), float("inf"))
    for chunk in references.flatten(1).split(1024):
        nearest = torch.minimum(nearest, torch.cdist(q, chunk.float() / 255).min(dim=1).values)
    return nearest.mean().item()
