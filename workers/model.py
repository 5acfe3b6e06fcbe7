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


def _upsample(config: GANConfig, in_ch: int, out_ch: int, bias: bool) -> nn.Module:
    """A layer that doubles the resolution."""
    if config.g_upsample == "nearest":
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=bias))
    return nn.ConvTranspose2d(in_ch, out_ch, 4, stride=2, padding=1, bias=bias)


class _ClassNorm(nn.Module):
    """Batch norm whose scale and shift depend on the class (identity-initialised)."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.scale = nn.Embedding(num_classes, channels)
        self.shift = nn.Embedding(num_classes, channels)
        nn.init.ones_(self.scale.weight)
        nn.init.zeros_(self.shift.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        return self.norm(x) * self.scale(labels)[:, :, None, None] + self.shift(labels)[:, :, None, None]


class Generator(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config
        width = config.g_width * 2 ** (config.stages - 1)
        self.project = nn.Linear(config.z_dim + config.num_classes, width * 4 * 4)
        widths = [width // 2**i for i in range(config.stages)]  # input width of each stage
        self.norms = nn.ModuleList(self._norm(w) for w in widths)
        self.stages = nn.ModuleList(
            _upsample(config, w, w // 2, bias=False) for w in widths[:-1]
        )
        self.to_image = _upsample(config, widths[-1], config.channels, bias=True)
        self.apply(init_weights)

    def _norm(self, channels: int) -> nn.Module:
        if self.config.g_class_norm:
            return _ClassNorm(channels, self.config.num_classes)
        return nn.BatchNorm2d(channels)

    def _normalise(self, index: int, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        norm = self.norms[index]
        return F.relu(norm(h, labels) if isinstance(norm, _ClassNorm) else norm(h))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        one_hot = F.one_hot(labels, self.config.num_classes).to(z.dtype)
        h = self.project(torch.cat([z, one_hot], dim=1))  # (B, W*16)
        h = h.view(h.shape[0], -1, 4, 4).contiguous(memory_format=torch.channels_last)  # (B, W, 4, 4)
        for index, stage in enumerate(self.stages):
            h = stage(self._normalise(index, h, labels))  # doubles the side, halves the width
        h = self._normalise(len(self.stages), h, labels)
        return torch.tanh(self.to_image(h))  # (B, C, S, S) in [-1, 1]


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
