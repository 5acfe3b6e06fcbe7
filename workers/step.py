"""One AC-GAN training step, and the models and optimisers it updates.

`train_split` (workers/train.py) loops over `train_step`; bench/train_step.py times the same
function against a loop written the way popular public ports write it. No I/O here.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass

import torch

from workers.augment import diff_augment
from workers.config import GANConfig
from workers.losses import discriminator_loss, generator_loss, mode_seeking_term
from workers.model import Discriminator, Generator, Judgement


class WeightAverage:
    """An exponential moving average of a model's weights (batch-norm statistics copied)."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.model = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        averaged = list(self.model.parameters())
        torch._foreach_lerp_(averaged, list(model.parameters()), 1.0 - self.decay)
        for mine, theirs in zip(self.model.buffers(), model.buffers()):
            mine.copy_(theirs)


@dataclass
class GAN:
    """G, D, their optimisers and G's weight average: everything a step updates."""

    config: GANConfig
    generator: Generator
    discriminator: Discriminator
    opt_g: torch.optim.Adam
    opt_d: torch.optim.Adam
    averaged: WeightAverage | None
    bf16: bool = False
    """Forward passes under bfloat16 autocast (config.precision, resolved for the device)."""

    @classmethod
    def build(cls, config: GANConfig, device: torch.device) -> GAN:
        """Fresh models on `device`, initialised from torch's global RNG."""
        # channels_last: the layout oneDNN and cuDNN convolutions run fastest in (1.6x for
        # G's upsample convs on CPU, bench/README.md).
        generator = Generator(config).to(device, memory_format=torch.channels_last)
        discriminator = Discriminator(config).to(device, memory_format=torch.channels_last)
        # fused: one kernel updates every parameter, instead of a dozen small ops per
        # parameter tensor (cpu-32: 0.53 -> 0.14 ms per step, cifar-32: 14.7 -> 2.8 ms on CPU).
        adam = dict(lr=config.lr, betas=(config.beta1, config.beta2), fused=True)
        return cls(
            config, generator, discriminator,
            torch.optim.Adam(generator.parameters(), **adam), torch.optim.Adam(discriminator.parameters(), **adam),
            WeightAverage(generator, config.g_ema) if config.g_ema else None, uses_bf16(config.precision, device),
        )  # fmt: skip

    def sampler(self) -> torch.nn.Module:
        """The generator to sample from: the weight average when there is one."""
        return self.averaged.model if self.averaged is not None else self.generator


def uses_bf16(precision: str, device: torch.device) -> bool:
    """`bf16`: yes; `fp32`: no; `auto`: where the device computes bf16 natively (a CUDA GPU
    with bf16, a CPU with AVX512-BF16 or AMX); emulated bf16 is slower than fp32."""
    if precision != "auto":
        return precision == "bf16"
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and torch.ops.mkldnn._is_mkldnn_bf16_supported()


@dataclass(frozen=True)
class Batch:
    real: torch.Tensor
    """(B, 3, H, W) float in [-1, 1], channels_last."""
    real_labels: torch.Tensor
    noise: torch.Tensor
    fake_labels: torch.Tensor


def shuffled_classes(count: int, num_classes: int, rng: torch.Generator) -> torch.Tensor:
    """`count` labels with every class equally often (a shuffled repeat of 0..K-1): the same
    distribution as uniform sampling, with less batch-to-batch class imbalance."""
    return (torch.arange(count) % num_classes)[torch.randperm(count, generator=rng)]


@dataclass(frozen=True)
class ClassIndex:
    """Where each class's images lie in a split's image tensor, for class-balanced real batches
    (GANConfig.class_balanced)."""

    order: torch.Tensor
    """Image positions sorted by label (on the CPU, where batches are drawn)."""
    starts: torch.Tensor
    counts: torch.Tensor
    """Per class that has images, its first place in `order` and its number of images."""

    @classmethod
    def of(cls, labels: torch.Tensor) -> "ClassIndex":
        labels = labels.cpu()
        order = torch.argsort(labels, stable=True)
        counts = torch.unique_consecutive(labels[order], return_counts=True)[1]
        return cls(order, torch.cumsum(counts, 0) - counts, counts)

    def draw(self, batch_size: int, rng: torch.Generator) -> torch.Tensor:
        """Positions of `batch_size` images: every class equally often, a uniformly drawn image
        of it each time."""
        which = shuffled_classes(batch_size, len(self.counts), rng)
        within = (torch.rand(batch_size, generator=rng) * self.counts[which]).long()
        # rand() < 1, but rand() * count can round up to count in float32
        return self.order[self.starts[which] + torch.minimum(within, self.counts[which] - 1)]


def draw_batch(images: torch.Tensor, labels: torch.Tensor, batch_size: int, z_dim: int, num_classes: int,
               rng: torch.Generator, paired: bool = False, balanced: ClassIndex | None = None) -> Batch:  # fmt: skip
    """A batch from uint8 images kept in memory on their device, drawn with `rng` (on the CPU,
    so runs are reproducible on any device). `paired`: the fakes' second half repeats the
    first half's classes (with other noise), as the mode-seeking term needs. `balanced`: real
    images drawn class-balanced from it, rather than uniformly over images."""
    device = images.device
    if balanced is not None:
        index = balanced.draw(batch_size, rng).to(device)
    else:
        index = torch.randint(0, len(images), (batch_size,), generator=rng).to(device)
    noise = torch.randn(batch_size, z_dim, generator=rng).to(device)
    drawn = batch_size // 2 if paired else batch_size
    fake_labels = shuffled_classes(drawn, num_classes, rng)
    if paired:
        fake_labels = torch.cat([fake_labels, fake_labels, fake_labels[: batch_size % 2]])
    fake_labels = fake_labels.to(device)
    real = images[index].float().div_(127.5).sub_(1.0).contiguous(memory_format=torch.channels_last)
    return Batch(real, labels[index], noise, fake_labels)


def train_step(gan: GAN, batch: Batch) -> torch.Tensor:
    """One D update then one G update. Returns the step's metrics (manifests.tables.history.METRICS,
    in that order) as a float64 tensor on the device: reading it is left to the caller,
    so that a step never waits for the device."""
    config, discriminator = gan.config, gan.discriminator
    augment = (lambda x: diff_augment(x, config.diff_augment)) if config.diff_augment else (lambda x: x)
    b, real, real_labels, fake_labels = len(batch.real), batch.real, batch.real_labels, batch.fake_labels
    # Forward passes only: backward runs each op in the dtype its forward used.
    autocast = lambda: torch.autocast(real.device.type, torch.bfloat16, enabled=gan.bf16)  # noqa: E731

    with autocast():
        fake = gan.generator(batch.noise, fake_labels)
        if config.d_batchnorm:
            # Separate passes, so D's batch statistics match the G step's fake-only batch.
            on_real = discriminator(augment(real), real_labels)
            on_fake = discriminator(augment(fake.detach()), fake_labels)
        else:  # the same arithmetic in one pass: fewer, larger kernels
            both = discriminator(augment(torch.cat([real, fake.detach()])), torch.cat([real_labels, fake_labels]))
            on_real, on_fake = (Judgement(*(t[:b] if t is not None else None for t in both)),
                                Judgement(*(t[b:] if t is not None else None for t in both)))  # fmt: skip
        loss_d = discriminator_loss(on_real, real_labels, on_fake, fake_labels, config)
    gan.opt_d.zero_grad(set_to_none=True)
    loss_d.backward()
    gan.opt_d.step()

    # G step: reuses this step's fakes against the updated D. D's weights are frozen for
    # it: their gradients would be thrown away (D's next step starts from zero), and
    # skipping them saves a third of D's backward pass.
    discriminator.requires_grad_(False)
    with autocast():
        judged = discriminator(augment(fake), fake_labels)
        loss_g = generator_loss(judged, fake_labels, config)
        if config.g_mode_seeking:  # the batch is paired (draw_batch): fake[i] and fake[i + b//2] share a class
            spread = mode_seeking_term(fake, batch.noise, centred=config.g_mode_seeking_centred)
            loss_g = loss_g + config.g_mode_seeking * spread
    gan.opt_g.zero_grad(set_to_none=True)
    loss_g.backward()
    discriminator.requires_grad_(True)
    gan.opt_g.step()
    if gan.averaged is not None:
        gan.averaged.update(gan.generator)

    with torch.no_grad():
        return torch.stack([
            loss_d.detach(), loss_g.detach(),
            (on_real.classes.argmax(1) == real_labels).float().mean(),
            (judged.classes.argmax(1) == fake_labels).float().mean(),
            torch.sigmoid(on_real.source.float()).mean(), torch.sigmoid(on_fake.source.float()).mean(),
        ]).double()  # fmt: skip
