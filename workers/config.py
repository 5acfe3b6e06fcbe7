"""Plain configuration records, free of torch so the coordinator can build them cheaply."""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field


@dataclass(frozen=True, kw_only=True)
class GANConfig:
    image_size: int = 32
    """Square image side in pixels: 4 * 2**n (8, 16, 32, 64, 128)."""
    channels: int = 3
    num_classes: int = 10
    """K: classes this one model conditions on (one split's classes)."""
    z_dim: int = 100
    """Noise size; G's input is z concatenated with the one-hot class."""
    g_width: int = 16
    """Feature maps of G's last hidden stage; each earlier stage doubles it."""
    d_width: int = 16
    """Feature maps of D's first stage; each later stage doubles it."""
    g_upsample: str = "transpose"
    """How G doubles resolution: `transpose` (the paper's 5x5/4x4 transposed convs) or
    `nearest` (nearest-neighbour upsampling then a 3x3 conv: no checkerboard artefacts)."""
    g_class_norm: bool = False
    """Class-conditional batch norm in G (a per-class scale and shift after each norm), on
    top of the paper's one-hot input: class information reaches every stage."""
    d_batchnorm: bool = True
    """Batch norm in D's hidden stages, as in the paper."""
    d_dropout: float = 0.5
    """Dropout after each D stage (the paper uses 0.5)."""
    d_class_loss_on_fake: bool = True
    """Train D's class head on fake images too (the paper); False: real images only."""
    g_class_weight: float = 1.0
    """Weight of the class term in G's loss (the paper: 1)."""
    g_ema: float = 0.0
    """Decay of an exponential moving average of G's weights, which sampling then uses;
    0 turns it off. Smooths out the last steps' oscillation."""
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999

    def __post_init__(self) -> None:
        stages = math.log2(self.image_size / 4)
        if self.image_size < 8 or stages != int(stages):
            raise ValueError(f"image_size must be 4 * 2**n and >= 8, got {self.image_size}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.g_upsample not in ("transpose", "nearest"):
            raise ValueError(f"g_upsample must be 'transpose' or 'nearest', got {self.g_upsample!r}")
        if not 0.0 <= self.g_ema < 1.0:
            raise ValueError(f"g_ema must be in [0, 1), got {self.g_ema}")
        if not 0.0 <= self.d_dropout < 1.0:
            raise ValueError(f"d_dropout must be in [0, 1), got {self.d_dropout}")
        for name in ("channels", "z_dim", "g_width", "d_width"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def stages(self) -> int:
        return int(math.log2(self.image_size / 4))

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GANConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown GAN config fields: {sorted(unknown)}")
        return cls(**values)


def cpu_32() -> GANConfig:
    """A small, fast AC-GAN for 32x32 images: the built-in data's 100-split run trains in
    minutes on two CPU cores. Departs from the paper where that learns faster in few steps
    (bench/README.md has the measurements): nearest-neighbour upsampling, class-conditional
    norm in G, no batch norm or dropout in D, D's class loss on real images only, lr 1e-3,
    and sampling from an average of G's weights over its last ~50 steps.
    """
    return GANConfig(
        image_size=32, z_dim=64, g_width=16, d_width=16, g_upsample="nearest", g_class_norm=True,
        d_batchnorm=False, d_dropout=0.0, d_class_loss_on_fake=False, lr=1e-3, g_ema=0.98,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    split: int
    classes: list[int]
    """Global class indices of this split; local label i is classes[i]."""
    class_names: list[str]
    data: str
    """`builtin` or the path of an image folder."""
    split_dir: str
    """Folder for this split's checkpoints."""
    steps: int
    batch_size: int
    seed: int
    gan: dict = field(default_factory=dict)
    """GANConfig fields; num_classes is taken from `classes`."""
    checkpoint_every: int = 250
    report_every_seconds: float = 1.0
