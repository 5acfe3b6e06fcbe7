"""Named model presets: `ensemble launch --preset NAME`.

Each preset is a function returning a frozen Preset: the model config (stored with every
checkpoint and in run.json) and the recipe's default steps and batch size.

    paper-128   the paper's ImageNet model at 128x128 (its appendix table, with the linear
                layer producing 768x8x8, since 768x1x1 cannot reach 128 in four stride-2 layers)
    paper-64    the paper's 64x64 variant: one upsampling layer fewer (the 192-map one)
    cifar-32    the paper's CIFAR-10 model: G Linear 384x4x4 -> 192 -> 96 -> 3, the same D
    cpu-32      a small 32x32 model that trains the built-in 100-split run in minutes on CPU
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from workers.config import GANConfig

PAPER_STEPS = 50_000
PAPER_BATCH_SIZE = 100
PAPER_CHECKPOINT_EVERY = 1000
PAPER_CLASSES_PER_SPLIT = 10
"""The paper's ImageNet setup: 100 AC-GANs of 10 classes each. What --splits defaults to for
the presets (one split per 10 classes: 100 for 1000)."""


@dataclass(frozen=True)
class Preset:
    name: str
    gan: GANConfig
    steps: int
    """Default training steps per split."""
    batch_size: int
    summary: str
    checkpoint_every: int = 200
    """Default steps between checkpoints: a paper-128 checkpoint is ~0.3 GB, too big to write every 200 steps."""


def paper_128() -> Preset:
    gan = GANConfig(image_size=128, g_start=8, g_widths=(768, 384, 256, 192))
    return Preset("paper-128", gan, PAPER_STEPS, PAPER_BATCH_SIZE, "the paper's ImageNet model, 128x128",
                  PAPER_CHECKPOINT_EVERY)


def paper_64() -> Preset:
    gan = GANConfig(image_size=64, g_start=8, g_widths=(768, 384, 256))
    return Preset("paper-64", gan, PAPER_STEPS, PAPER_BATCH_SIZE, "the paper's ImageNet model, 64x64",
                  PAPER_CHECKPOINT_EVERY)


def cifar_32() -> Preset:
    gan = GANConfig(image_size=32, g_start=4, g_widths=(384, 192, 96))
    return Preset("cifar-32", gan, PAPER_STEPS, PAPER_BATCH_SIZE, "the paper's CIFAR-10 model, 32x32",
                  PAPER_CHECKPOINT_EVERY)


def cpu_32() -> Preset:
    """Departs from the paper where that learns faster in few steps (bench/README.md has
    the measurements): a DCGAN-sized model with nearest-neighbour upsampling, class-
    conditional norm in G, no batch norm or dropout in D, D's class loss on real images
    only, lr 5e-4 (1e-3 until issue 20: half of it keeps classes twice as often under the
    real MS-SSIM ceiling at the same accuracy, bench/README.md), sampling from an average of
    G's weights over its last ~50 steps, and bf16
    where the machine computes it natively (1.37x the images/s of fp32 on an AMX Xeon, 1.16x
    on an AVX512-BF16 EPYC; bench/README.md)."""
    gan = GANConfig(
        image_size=32, z_dim=64, g_start=4, g_widths=(64, 32, 16), g_kernel=4, g_upsample="nearest",
        g_project_norm=True, g_class_norm=True, d_widths=(16, 32, 64), d_strides=(2, 2, 2), d_kernel=4,
        d_batchnorm=False, d_dropout=0.0, d_class_loss_on_fake=False, lr=5e-4, g_ema=0.98, precision="auto",
    )  # fmt: skip
    # g_kernel=4 is unused by nearest upsampling (3x3 convs); kept so that the configs of runs
    # from before the presets (workers/config.py: _from_version_1) still equal this preset.
    return Preset("cpu-32", gan, 450, 32, "small and fast: the built-in data on CPU in minutes")


@dataclass(frozen=True)
class DataRecipe:
    """What `ensemble launch --data DIR` trains when --preset is left out: a preset, its
    steps, and the model fields changed. Chosen by measurement on real image folders that
    ship in packages (`bench/real_data.py`; bench/README.md, "A default recipe for real
    images"). --steps, --set and --splits still override it."""

    preset: str
    steps: int
    overrides: dict
    classes_per_split: int
    """What --splits defaults to: one split per this many classes. The recipe was chosen and
    measured on splits of 5 classes; one split of 10 classes with the same steps recognised the
    least-textured classes less often (bench/README.md, "Five classes per split")."""


REAL_IMAGES = DataRecipe("cpu-32", 6000, {"lr": 2.5e-4, "d_spectral_norm": True, "g_mode_seeking": 0.2,
                                           "g_mode_seeking_centred": True, "d_projection": True,
                                           "class_balanced": True, "g_widths": (96, 48, 24)},
                         classes_per_split=5)
"""MSGAN's mode-seeking term at weight 0.2 keeps the least-textured classes varied: without it
the rocket's sky, brick, grass, the clock and the cell collapsed (weight 1 cost the digits a
third of their recognisability; 0.5 made star fields grey squares). A projection head in D
makes every class recognisable where the auxiliary classifier alone left some unrecognised
(a printed page 73% -> 98%, a camera man 71% -> 96%). The term measures images apart with
each one's mean brightness taken away: on raw pixels G earned it by drawing a class light
and dark, and the dark ones were near-copies (the printed page, flagged after its retry).
lr 2.5e-4 over 6000 steps (5e-4 over 4000 before): the smooth grey scans (a moon, a retina's
microaneurysms) came out more self-similar than their real images by the paper's MS-SSIM
criterion, 2 classes in 120 over three seeds of four kinds, which the guard does not retry;
with half the lr and 1.5x the steps none did, and no split needed a retry. It costs half as
much time again: two splits of 5 classes in ~100 s instead of ~70 s on 2 cores. Half the lr
over 4000 steps also left none collapsed but recognised a page at 79% (bench/README.md,
"Half the lr over 1.5x the steps"). Class-balanced real batches: a folder's classes often differ
in size, and a small one drawn over images is seen real less often than fake; LFW's 80
non-faces beside classes of 300 crops collapsed (diversity 0.56-0.63, one not ok after its
retry) and came out varied with them (0.76-0.83, no retry; bench/README.md, "Class-balanced
batches"). G half again as wide as cpu-32's (96, 48, 24 maps): with 64, 32, 16 the fMRI slices
and a CT of the skull base, told apart by fine inner structure, came out as brain outlines with
noisy insides and were recognised 76-78% on some seeds; half again as wide, every class of six
kinds was recognised >= 86% over 20 launches, none spread under 0.75, for a fifth more time
(bench/README.md, "A wider G for folders")."""


PRESETS: dict[str, Callable[[], Preset]] = {
    "paper-128": paper_128,
    "paper-64": paper_64,
    "cifar-32": cifar_32,
    "cpu-32": cpu_32,
}
DEFAULT_PRESET = "cpu-32"


def get_preset(name: str) -> Preset:
    try:
        return PRESETS[name]()
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}") from None
