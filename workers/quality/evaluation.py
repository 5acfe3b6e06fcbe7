"""The paper's evaluation of one split's generator, offline: per class, discriminability
(accuracy of the split's own classifier on generated samples, beside its accuracy on
held-out real images), diversity (MS-SSIM of random same-class pairs, generated and real,
and the spread ratio of workers/quality/yardstick.py), memorisation (distance to the nearest training
image, against held-out real images'), and FID / KID in the classifier's feature space.

Metrics come from torchmetrics (MS-SSIM, FID, KID): tested implementations, and FID/KID take
any feature extractor, so nothing is downloaded.

MS-SSIM at small sizes: torchmetrics needs side > (kernel - 1) * 2**(scales - 1). We keep the
7x7 Gaussian window and use as many of the standard five scales (their betas renormalised
to sum to 1) as the side allows: 3 at 32 px, 4 at 64 px, 5 at 128 px and above.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from manifests.errors import UserError, first_line
from workers.quality.yardstick import COLLAPSED, MEMORISED, OK, Yardstick, guard_verdict, to_input

MS_SSIM_KERNEL = 7
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
MS_SSIM_PAIRS = 100
"""Random same-class pairs per class, as in the paper."""
MS_SSIM_MARGIN = 0.05
"""Collapsed means generated MS-SSIM above the highest real class's by more than this. The
paper's criterion is a statement about all classes together; per class, a perfect generator
of the most self-similar class would exceed the ceiling by chance half the time (the mean of
100 pairs varies by about 0.01-0.02), so a margin of a few of those keeps the verdict for
real collapse."""
MEMORISATION_FLOOR = 0.5
"""A class is memorised when its samples lie, on average, less than half as far from their
nearest training image as held-out real images of the class do."""
REAL_FEATURES_LIMIT = 2000
"""Real images per split that FID/KID compare against (all of them, up to this many)."""


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


@dataclass
class ClassEvaluation:
    local_label: int
    accuracy: float
    real_accuracy: float | None
    ms_ssim: float | None
    real_ms_ssim: float | None
    diversity: float
    fid: float | None
    novelty: float | None
    """Nearest-training-image distance of samples / of held-out real images (~1: as novel as
    new real photos; near 0: copies)."""
    imagenet_accuracy: float | None = None


@torch.no_grad()
def evaluate_classes(yardstick: Yardstick, images: torch.Tensor, labels: torch.Tensor,
                     samples: list[torch.Tensor], seed: int) -> tuple[list[ClassEvaluation], float | None, float | None]:  # fmt: skip
    """Every measure for each local class, given its generated uint8 samples, and the
    split's FID and KID. `images`/`labels` are the split's real images (uint8) and labels."""
    device = yardstick.device
    held_out = yardstick.held_out
    model = yardstick.model
    real_pick = (~held_out).nonzero().flatten()
    real_pick = real_pick[:: max(1, len(real_pick) // REAL_FEATURES_LIMIT)][:REAL_FEATURES_LIMIT]
    real_features = torch.cat([model.features(to_input(chunk.to(device))).cpu() for chunk in images[real_pick].split(512)])
    fake_features_all = []
    rows = []
    for label, fakes in enumerate(samples):
        accuracy, diversity, features = yardstick.measure(to_input(fakes), label)
        fake_features_all.append(features.cpu())
        of_class = labels == label
        trained, tested = images[of_class & ~held_out], images[of_class & held_out]
        class_real_features = model.features(to_input(trained[:REAL_FEATURES_LIMIT].to(device))).cpu()
        class_fid = fid(class_real_features, features.cpu())
        novelty = None
        if len(tested) and len(trained):
            reference = nearest_distance(tested, trained)
            novelty = nearest_distance(fakes, trained) / reference if reference > 0 else None
        rows.append(ClassEvaluation(
            local_label=label, accuracy=accuracy, real_accuracy=yardstick.real_accuracy[label],
            ms_ssim=mean_ms_ssim(fakes, MS_SSIM_PAIRS, seed + label),
            real_ms_ssim=mean_ms_ssim(images[of_class], MS_SSIM_PAIRS, seed + label),
            diversity=diversity, fid=class_fid, novelty=novelty,
        ))  # fmt: skip
    fake_features = torch.cat(fake_features_all)
    return rows, fid(real_features, fake_features), kid(real_features, fake_features)


def verdict(row: ClassEvaluation, ms_ssim_ceiling: float | None) -> str:
    """collapsed (the paper's MS-SSIM criterion, with MS_SSIM_MARGIN), then the guard's
    verdict (collapsed by diversity, low-accuracy), then memorised; else ok."""
    if row.ms_ssim is not None and ms_ssim_ceiling is not None and row.ms_ssim > ms_ssim_ceiling + MS_SSIM_MARGIN:
        return COLLAPSED
    found = guard_verdict(row.accuracy, row.real_accuracy, row.diversity)
    if found != OK:
        return found
    if row.novelty is not None and row.novelty < MEMORISATION_FLOOR:
        return MEMORISED
    return OK


# -- the paper's 1000-way accuracy, with a classifier file the user already has -----------------
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class ImageNetClassifierError(UserError):
    """A --classifier-weights file that cannot be used."""


def load_imagenet_classifier(path: str, device: torch.device) -> tuple[nn.Module, int]:
    """A torchvision Inception-v3 or ResNet-50 from a state dict file (.pth/.pt, or
    .safetensors), and the side it reads images at. Never downloads anything."""
    import torchvision

    try:
        if str(path).endswith(".safetensors"):
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise ImageNetClassifierError(f"--classifier-weights {path}: no such file") from None
    except Exception as exc:  # torch and safetensors raise many types for a foreign file
        raise ImageNetClassifierError(
            f"--classifier-weights {path} is unreadable ({type(exc).__name__}: {first_line(exc, 120)})"
        ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ImageNetClassifierError(f"--classifier-weights {path} is not a state dict of tensors")
    if any(k.startswith("Mixed_") for k in state):
        model, side = torchvision.models.inception_v3(weights=None, aux_logits="AuxLogits.fc.weight" in state,
                                                      init_weights=False), 299  # fmt: skip
    elif "layer4.2.conv3.weight" in state:
        model, side = torchvision.models.resnet50(weights=None), 224
    else:
        raise ImageNetClassifierError(
            f"--classifier-weights {path} is neither a torchvision Inception-v3 nor a ResNet-50 state dict"
        )
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ImageNetClassifierError(
            f"--classifier-weights {path} does not fit its architecture ({first_line(exc, 120)})"
        ) from None
    return model.eval().to(device), side


@torch.no_grad()
def imagenet_accuracy(model: nn.Module, side: int, images: torch.Tensor, global_label: int) -> float:
    """Share of uint8 images the 1000-way classifier assigns to `global_label`, images resized
    to the classifier's input as the paper did (bilinear)."""
    import torch.nn.functional as F

    device = next(model.parameters()).device
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)
    hits = 0
    for chunk in images.split(32):
        x = F.interpolate(chunk.to(device).float() / 255, size=(side, side), mode="bilinear", align_corners=False)
        hits += (model((x - mean) / std).argmax(1) == global_label).sum().item()
    return hits / len(images)
