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
    z_dim: int = 64
    """Noise size; G's input is z concatenated with the one-hot class."""
    g_width: int = 16
    """Feature maps of G's last hidden stage; each earlier stage doubles it."""
    d_width: int = 16
    """Feature maps of D's first stage; each later stage doubles it."""
    d_batchnorm: bool = False
    """Batch norm in D's hidden stages (the paper has it; small fast models train faster without)."""
    d_dropout: float = 0.0
    """Dropout after each D stage (the paper uses 0.5)."""
    lr: float = 5e-4
    beta1: float = 0.5
    beta2: float = 0.999

    def __post_init__(self) -> None:
        stages = math.log2(self.image_size / 4)
        if self.image_size < 8 or stages != int(stages):
            raise ValueError(f"image_size must be 4 * 2**n and >= 8, got {self.image_size}")
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
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
