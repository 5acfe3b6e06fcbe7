"""AC-GAN losses, computed from logits (no softmax before cross-entropy: a known bug in
popular ports that squashes the class gradient).

D maximises L_S + L_C, with its class loss on real and fake images; G maximises L_C - L_S,
in the usual non-saturating form.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def discriminator_loss(
    real_source: torch.Tensor,
    real_class: torch.Tensor,
    real_labels: torch.Tensor,
    fake_source: torch.Tensor,
    fake_class: torch.Tensor,
    fake_labels: torch.Tensor,
    class_loss_on_fake: bool = True,
) -> torch.Tensor:
    """The paper trains D's class head on real and fake images; `class_loss_on_fake=False`
    trains it on real images only, a remedy for AC-GAN's low-diversity samples."""
    source = F.binary_cross_entropy_with_logits(
        real_source, torch.ones_like(real_source)
    ) + F.binary_cross_entropy_with_logits(fake_source, torch.zeros_like(fake_source))
    classes = F.cross_entropy(real_class, real_labels)
    if class_loss_on_fake:
        classes = classes + F.cross_entropy(fake_class, fake_labels)
    return source + classes


def generator_loss(
    fake_source: torch.Tensor, fake_class: torch.Tensor, fake_labels: torch.Tensor, class_weight: float = 1.0
) -> torch.Tensor:
    source = F.binary_cross_entropy_with_logits(fake_source, torch.ones_like(fake_source))
    return source + class_weight * F.cross_entropy(fake_class, fake_labels)
