"""AC-GAN losses, computed from logits (no softmax before cross-entropy: a known bug in
popular ports that squashes the class gradient).

D maximises L_S + L_C, with its class loss on real and fake images; G maximises L_C - L_S,
in the usual non-saturating form. Options (workers/config.py): the hinge source loss,
D's class loss on real images only, and TAC's twin classifier.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from workers.config import GANConfig
from workers.model import Judgement


def _source_loss_d(real: torch.Tensor, fake: torch.Tensor, loss: str) -> torch.Tensor:
    if loss == "hinge":
        return F.relu(1.0 - real).mean() + F.relu(1.0 + fake).mean()
    return F.binary_cross_entropy_with_logits(real, torch.ones_like(real)) + F.binary_cross_entropy_with_logits(
        fake, torch.zeros_like(fake)
    )


def discriminator_loss(real: Judgement, real_labels: torch.Tensor, fake: Judgement, fake_labels: torch.Tensor,
                       config: GANConfig) -> torch.Tensor:  # fmt: skip
    """`fake` must come from detached fakes: this loss trains D only."""
    loss = _source_loss_d(real.source, fake.source, config.loss) + F.cross_entropy(real.classes, real_labels)
    if config.d_class_loss_on_fake:
        loss = loss + F.cross_entropy(fake.classes, fake_labels)
    if config.tac:  # the twin learns which class each fake was asked to be
        loss = loss + F.cross_entropy(fake.twin, fake_labels)
    return loss


def generator_loss(fake: Judgement, fake_labels: torch.Tensor, config: GANConfig) -> torch.Tensor:
    if config.loss == "hinge":
        source = -fake.source.mean()
    else:
        source = F.binary_cross_entropy_with_logits(fake.source, torch.ones_like(fake.source))
    classes = F.cross_entropy(fake.classes, fake_labels)
    if config.tac:  # ... and G makes the twin's job hard: its fakes cover each class, not its easy modes
        classes = classes - F.cross_entropy(fake.twin, fake_labels)
    return source + config.g_class_weight * classes


MODE_SEEKING_EPS = 1e-5


def mode_seeking_term(images: torch.Tensor, noise: torch.Tensor, centred: bool = False) -> torch.Tensor:
    """MSGAN's term for a batch whose second half repeats the first half's classes: the
    inverse of (mean image distance / mean noise distance) over those pairs. Minimising it
    spreads a class's images as far apart as its noises are; it is large when G collapses.
    `centred`: each image's mean brightness is taken away first, so that a pair differing only
    in brightness counts as the near-copies it is."""
    half = len(images) // 2
    images = images.float()
    if centred:
        images = images - images.mean(dim=(1, 2, 3), keepdim=True)
    image_distance = (images[:half] - images[half : 2 * half]).abs().mean()
    noise_distance = (noise[:half] - noise[half : 2 * half]).abs().mean()
    return 1.0 / (image_distance / noise_distance + MODE_SEEKING_EPS)
