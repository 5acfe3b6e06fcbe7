"""The AC-GAN: a class-conditional generator and a discriminator with two heads.

G(z, c) -> image. D(x) -> Judgement(source logit: real vs fake, K class logits, and with
TAC K twin-class logits). Every head emits logits; the losses (workers/losses.py) apply
the sigmoid / softmax themselves.
"""
from __future__ import annotations

from typing import NamedTuple

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
    k = config.g_kernel  # padding and output_padding that make any kernel exactly double the side
    return nn.ConvTranspose2d(in_ch, out_ch, k, stride=2, padding=(k - 1) // 2, output_padding=k % 2, bias=bias)


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
        self.grey = False
        """Show grey: in eval mode (every sample, the guard's checks, evaluation, serving) an image is
        the mean of its three channels. Set by workers/train.py for a split whose real images are
        all grey, and kept in the generator's JSON. Training is untouched: a G trained to draw grey
        failed the fMRI pair of the medical set (bench/README.md), but the colour G's grey pictures
        carry faint colour speckles (up to 61 of 255 between a pixel's channels) no real image has,
        which the split's classifier read as evidence of the class."""
        widths = config.g_widths  # input width of each upsampling layer
        self.project = nn.Linear(config.z_dim + config.num_classes, widths[0] * config.g_start**2)
        self.norms = nn.ModuleList(self._norm(w, i) for i, w in enumerate(widths))
        self.stages = nn.ModuleList(_upsample(config, w, w_next, bias=False) for w, w_next in zip(widths, widths[1:]))
        self.to_image = _upsample(config, widths[-1], config.channels, bias=True)
        self.apply(init_weights)

    def _norm(self, channels: int, index: int) -> nn.Module:
        if index == 0 and not self.config.g_project_norm:
            return nn.Identity()
        if self.config.g_class_norm:
            return _ClassNorm(channels, self.config.num_classes)
        return nn.BatchNorm2d(channels)

    def _normalise(self, index: int, h: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        norm = self.norms[index]
        return F.relu(norm(h, labels) if isinstance(norm, _ClassNorm) else norm(h))

    def forward(self, z: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        c = self.config
        one_hot = F.one_hot(labels, c.num_classes).to(z.dtype)
        h = self.project(torch.cat([z, one_hot], dim=1))
        h = h.view(h.shape[0], c.g_widths[0], c.g_start, c.g_start).contiguous(memory_format=torch.channels_last)
        for index, stage in enumerate(self.stages):
            h = stage(self._normalise(index, h, labels))  # doubles the side
        h = self._normalise(len(self.stages), h, labels)
        images = torch.tanh(self.to_image(h))  # (B, C, S, S) in [-1, 1]
        if self.grey and not self.training:
            images = images.mean(1, keepdim=True).expand_as(images).contiguous(memory_format=torch.channels_last)
        return images


class _ActivationNoise(nn.Module):
    """Adds N(0, std) noise while training; nothing in eval mode."""

    def __init__(self, std: float):
        super().__init__()
        self.std = std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.randn_like(x) * self.std if self.training else x


def minibatch_spread(h: torch.Tensor, group: int) -> torch.Tensor:
    """(B, F) features -> (B, F + 1): each image's features and how much its group of `group`
    consecutive images varies (the std over the group, averaged over features; ProGAN's
    minibatch standard deviation). A batch of near-copies shows up here, which no single
    image's features can show; D learns it as a sign of fakes. Groups are consecutive, so
    a D pass over real images then fakes mixes the two in no group when the group size
    divides the batch (the presets' batches, 100 and 32, take groups of 2 or 4); their
    size is the largest divisor of the images judged that is at most `group`."""
    b = len(h)
    size = max(d for d in range(1, min(group, b) + 1) if b % d == 0)
    spread = h.float().reshape(b // size, size, -1).std(1, unbiased=False).mean(1)
    return torch.cat([h, spread.repeat_interleave(size)[:, None].to(h.dtype)], 1)


class Judgement(NamedTuple):
    source: torch.Tensor
    """(B,) logit of "real"."""
    classes: torch.Tensor
    """(B, K) class logits: the auxiliary classifier."""
    twin: torch.Tensor | None
    """(B, K) logits of TAC's twin classifier, which learns the classes of fakes; None without TAC."""


class Discriminator(nn.Module):
    def __init__(self, config: GANConfig):
        super().__init__()
        self.config = config

        def init(layer: nn.Module) -> nn.Module:
            # Initialised before spectral norm wraps it: the wrapped weight is computed.
            init_weights(layer)
            return nn.utils.parametrizations.spectral_norm(layer) if config.d_spectral_norm else layer

        layers: list[nn.Module] = []
        in_ch = config.channels
        for index, (width, stride) in enumerate(zip(config.d_widths, config.d_strides)):
            if config.d_noise:
                layers.append(_ActivationNoise(config.d_noise))
            # The first layer never has batch norm (as in the paper and DCGAN).
            use_bn = config.d_batchnorm and index > 0
            padding = (config.d_kernel - 1) // 2
            layers.append(init(nn.Conv2d(in_ch, width, config.d_kernel, stride=stride, padding=padding, bias=not use_bn)))
            if use_bn:
                layers.append(nn.BatchNorm2d(width))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            if config.d_dropout:
                layers.append(nn.Dropout(config.d_dropout))
            in_ch = width
        self.features = nn.Sequential(*layers)
        k = config.num_classes
        feature_count = in_ch * config.d_output_side**2 + (1 if config.d_minibatch_std else 0)
        self.heads = init(nn.Linear(feature_count, 1 + k + (k if config.tac else 0)))
        # The projection discriminator's class embedding (Miyato & Koyama 2018): the source
        # logit gains <embed(y), features>, so "real" is judged per class, and G is pushed to
        # match each class's own distribution rather than its most recognisable images.
        self.projection = None
        if config.d_projection:
            embedding = nn.Embedding(k, feature_count)
            nn.init.normal_(embedding.weight, 0.0, 0.02)  # as the heads' weights (init_weights)
            self.projection = init(embedding)

    def forward(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> Judgement:
        """`labels`: the class each image is (or was asked to be); needed with d_projection."""
        h = self.features(images).flatten(1)
        if self.config.d_minibatch_std:
            h = minibatch_spread(h, self.config.d_minibatch_std)
        logits = self.heads(h)  # (B, 1 + K [+ K])
        k = self.config.num_classes
        twin = logits[:, 1 + k :] if self.config.tac else None
        source = logits[:, 0]
        if self.projection is not None:
            if labels is None:
                raise ValueError("a discriminator with d_projection judges images with their labels")
            source = source + (self.projection(labels) * h).sum(1)
        return Judgement(source, logits[:, 1 : 1 + k], twin)
