"""The AC-GAN: a class-conditional generator and a discriminator with two heads.

G(z, c) -> image. D(x) -> (source logit: real vs fake, K class logits). Both heads emit
logits; the losses (workers/losses.py) apply the sigmoid / softmax themselves.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from workers.config import GANConfig


def init_weights(module: nn.Module) -> None:
    """The paper's init: weights ~ N(0, 0.02), biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


class Generator(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        width = config.g_width * 2 ** (config.stages - 1)
        self.project = nn.Linear(config.z_dim + config.num_classes, width * 4 * 4)
        self.project_norm = nn.BatchNorm2d(width)
        layers: list[nn.Module] = []
        for _ in range(config.stages - 1):
            layers += [
                nn.ConvTranspose2d(width, width // 2, 4, stride=2, padding=1, bias=False),
                nn.BatchNorm2d(width // 2),
                nn.ReLU(inplace=True),
            ]
            width //= 2
        layers += [nn.ConvTranspose2d(width, config.channels, 4, stride=2, padding=1), nn.Tanh()]
        self.upsample = nn.Sequential(*layers)
        self.apply(init_weights)

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(labels, self.config.num_classes).to(z.dtype)
        h = self.project(torch.cat([z, one_hot], dim=1))  # (B, W*16)
        h = h.view(h.shape[0], -1, 4, 4)  # (B, W, 4, 4)
        h = F.relu(self.project_norm(h))
        return self.upsample(h)  # (B, C, S, S) in [-1, 1]


class Discriminator(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        in_ch, width = config.channels, config.d_width
        for stage in range(config.stages):
            # The first stage never has batch norm (as in the paper and DCGAN).
            use_norm = config.d_batchnorm and stage > 0
            layers.append(nn.Conv2d(in_ch, width, 4, stride=2, padding=1, bias=not use_norm))
            if use_norm:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if config.d_dropout:
                layers.append(nn.Dropout(config.d_dropout))
            in_ch, width = width, width * 2
        self.features = nn.Sequential(*layers)
        self.heads = nn.Linear(in_ch * 4 * 4, 1 + config.num_classes)
        self.apply(init_weights)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.features(images).flatten(1)  # (B, W*16)
        logits = self.heads(h)  # (B, 1 + K)
        return logits[:, 0], logits[:, 1:]  # source logit (B,), class logits (B, K)
