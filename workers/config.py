"""Plain configuration records, free of torch so the coordinator can build them cheaply.

GANConfig's defaults are the paper's recipe (BCE losses, D's class loss on real and fake
images, batch norm and dropout 0.5 in D, Adam 2e-4 / (0.5, 0.999)); the options later work
added (spectral norm, hinge loss, EMA, DiffAugment, TAC) are off. The named presets are
in workers/presets.py.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

LOSSES = ("bce", "hinge")
PRECISIONS = ("fp32", "bf16", "auto")
_TYPE_NAMES = {int: "an integer", float: "a number", bool: "true or false", str: "text", tuple: "a list"}
AUGMENTATIONS = ("color", "translation", "cutout")


@dataclass(frozen=True, kw_only=True)
class GANConfig:
    image_size: int = 32
    """Square image side in pixels; must equal g_start * 2**len(g_widths)."""
    channels: int = 3
    num_classes: int = 10
    """K: classes this one model conditions on (one split's classes)."""
    z_dim: int = 100
    """Noise size; G's input is z concatenated with the one-hot class (the paper: 100 + 10)."""

    # Generator: Linear -> g_widths[0] x g_start x g_start, then one resolution-doubling
    # layer per entry of g_widths (into the next width, the last one into `channels`).
    g_start: int = 4
    g_widths: tuple[int, ...] = (384, 192, 96)
    """Feature maps of the linear layer's output and of each hidden upsampling layer."""
    g_kernel: int = 5
    """Kernel of G's transposed convolutions (the paper: 5x5, stride 2). Unused with
    g_upsample `nearest`, whose convolutions are 3x3."""
    g_upsample: str = "transpose"
    """`transpose` (the paper's transposed convs) or `nearest` (nearest-neighbour upsampling
    then a 3x3 conv: no checkerboard artefacts)."""
    g_project_norm: bool = False
    """Batch norm on the linear layer's output (the paper: ReLU only)."""
    g_class_norm: bool = False
    """Class-conditional batch norm in G (a per-class scale and shift after each norm), on
    top of the paper's one-hot input: class information reaches every stage."""

    # Discriminator: one conv per entry of d_widths, with the matching stride.
    d_widths: tuple[int, ...] = (16, 32, 64, 128, 256, 512)
    d_strides: tuple[int, ...] = (2, 1, 2, 1, 2, 1)
    d_kernel: int = 3
    d_batchnorm: bool = True
    """Batch norm in D's layers but the first, as in the paper."""
    d_dropout: float = 0.5
    """Dropout after each D layer (the paper: 0.5)."""
    d_noise: float = 0.0
    """Std of Gaussian noise added to the input of each D layer while training (the paper's
    "activation noise"; it searched 0, 0.1 and 0.2)."""
    d_spectral_norm: bool = False
    """Spectral normalisation of D's weights (Miyato et al. 2018)."""
    d_minibatch_std: int = 0
    """Groups of this many images give D one more feature: how much the group varies
    (ProGAN's minibatch standard deviation), so a batch of near-copies looks fake. 0: off."""
    d_projection: bool = False
    """A projection head beside the auxiliary classifier (Miyato & Koyama 2018): D's source
    logit gains the inner product of its features with a learnt embedding of the image's
    class, so D judges real-vs-fake per class."""

    # Losses and recipe.
    loss: str = "bce"
    """`bce` (the paper's, non-saturating for G) or `hinge` (the source loss of SN-GAN/BigGAN)."""
    d_class_loss_on_fake: bool = True
    """Train D's class head on fake images too (the paper); False: real images only."""
    tac: bool = False
    """TAC-GAN's twin classifier: a second class head trained on fakes, whose loss G
    maximises. Counters AC-GAN's low-diversity samples; needs d_class_loss_on_fake False."""
    g_class_weight: float = 1.0
    """Weight of the class term in G's loss (the paper: 1)."""
    g_mode_seeking: float = 0.0
    """Weight of MSGAN's mode-seeking term in G's loss (Mao et al. 2019): each step pairs fakes
    of one class made from two noises, and G is pushed to keep their images as far apart as
    their noises. Counters collapse; what a quality retry turns on for a collapsed class.
    0 turns it off."""
    g_mode_seeking_centred: bool = False
    """The mode-seeking term measures how far apart two images are after taking each image's
    own mean brightness away: with raw pixels, a generator earns the term by making one image
    light and the other dark, and does (a class then comes in two brightnesses, each a few
    near-copies; bench/README.md, issue 20)."""
    class_balanced: bool = False
    """Real batches hold every class equally often, as the fakes' labels do, however many
    images each class has. Drawn uniformly over images, a class with a quarter of the others'
    images is under a third as often real as fake in D's batches (D's projection head judges
    "real" per class): LFW's 80 non-faces beside four classes of 300 crops came out as dark
    squares and a few light blotches, and varied when balanced (bench/README.md,
    "Class-balanced batches")."""
    g_ema: float = 0.0
    """Decay of an exponential moving average of G's weights, which sampling then uses;
    0 turns it off."""
    diff_augment: tuple[str, ...] = ()
    """DiffAugment policies (Zhao et al. 2020) applied to every image D sees, real or fake:
    any of color, translation, cutout."""
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    precision: str = "fp32"
    """`fp32`, or `bf16`: the training step's forward passes run under bfloat16 autocast
    (weights, optimiser state and losses stay fp32), or `auto`: bf16 where the device computes
    it natively (a CUDA GPU with bf16, a CPU with AVX512-BF16 or AMX), else fp32.
    bench/train_step.py measures the gain."""

    def __post_init__(self) -> None:
        self._check_types()
        if self.image_size < 8 or self.g_start * 2 ** len(self.g_widths) != self.image_size:
            raise ValueError(
                f"image_size must be g_start * 2**len(g_widths) and >= 8: got image_size {self.image_size}, "
                f"g_start {self.g_start}, {len(self.g_widths)} g_widths"
            )
        if self.num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {self.num_classes}")
        if self.g_upsample not in ("transpose", "nearest"):
            raise ValueError(f"g_upsample must be 'transpose' or 'nearest', got {self.g_upsample!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.loss not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.loss!r}")
        unknown = [p for p in self.diff_augment if p not in AUGMENTATIONS]
        if unknown:
            raise ValueError(f"diff_augment policies must be among {', '.join(AUGMENTATIONS)}, got {unknown}")
        if self.tac and self.d_class_loss_on_fake:
            raise ValueError("tac trains D's class head on real images only: set d_class_loss_on_fake false")
        if self.g_mode_seeking < 0:
            raise ValueError(f"g_mode_seeking must be >= 0, got {self.g_mode_seeking}")
        if not 0.0 <= self.g_ema < 1.0:
            raise ValueError(f"g_ema must be in [0, 1), got {self.g_ema}")
        if not 0.0 <= self.d_dropout < 1.0:
            raise ValueError(f"d_dropout must be in [0, 1), got {self.d_dropout}")
        if self.d_minibatch_std < 0 or self.d_minibatch_std == 1:
            raise ValueError(f"d_minibatch_std must be 0 (off) or a group size >= 2, got {self.d_minibatch_std}")
        if self.d_noise < 0:
            raise ValueError(f"d_noise must be >= 0, got {self.d_noise}")
        if len(self.d_strides) != len(self.d_widths) or not self.d_widths:
            raise ValueError(f"d_strides must have one stride per d_widths entry, got {self.d_strides}")
        if any(s not in (1, 2) for s in self.d_strides) or self.image_size % 2 ** self.d_strides.count(2):
            raise ValueError(f"d_strides must be 1s and 2s that divide image_size, got {self.d_strides}")
        if 1 in self.d_strides and self.d_kernel % 2 == 0:
            raise ValueError(f"d_kernel must be odd when a d_strides entry is 1, got {self.d_kernel}")
        for name in ("channels", "z_dim", "g_start", "g_kernel", "d_kernel"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("g_widths", "d_widths"):
            if not all(isinstance(w, int) and w >= 1 for w in getattr(self, name)):
                raise ValueError(f"{name} must be positive integers, got {getattr(self, name)}")

    def _check_types(self) -> None:
        """Each field must have its default's type (values often come from JSON or --set)."""
        for f in dataclasses.fields(self):
            value, kind = getattr(self, f.name), type(f.default)
            if kind is tuple and isinstance(value, (list, tuple)):
                object.__setattr__(self, f.name, tuple(value))  # JSON gives lists
                continue
            if kind is float and isinstance(value, int) and not isinstance(value, bool):
                object.__setattr__(self, f.name, float(value))
                continue
            if type(value) is not kind:
                raise ValueError(f"{f.name} must be {_TYPE_NAMES[kind]}, got {value!r}")

    @property
    def d_output_side(self) -> int:
        """Side of D's last feature map."""
        return self.image_size // 2 ** self.d_strides.count(2)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "GANConfig":
        values = _from_version_1(values)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(values) - known
        if unknown:
            raise ValueError(f"unknown GAN config fields: {sorted(unknown)}")
        return cls(**values)


def _from_version_1(values: dict) -> dict:
    """Configs written before the presets named a DCGAN shape by two widths (each stage
    doubling or halving them, 4x4 kernels, batch norm on the projection): spelled out, they
    build the same modules, so their checkpoints load unchanged."""
    if "g_width" not in values:
        return values
    values = dict(values)
    g_width, d_width = values.pop("g_width"), values.pop("d_width")
    stages = int(math.log2(values.get("image_size", 32) / 4))
    return {
        "g_start": 4, "g_widths": tuple(g_width * 2 ** (stages - 1 - i) for i in range(stages)), "g_kernel": 4,
        "g_project_norm": True, "d_widths": tuple(d_width * 2**i for i in range(stages)),
        "d_strides": (2,) * stages, "d_kernel": 4, **values,
    }  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TrainJob:
    split: int
    classes: list[int]
    """Global class indices of this split; local label i is classes[i]."""
    class_names: list[str]
    data: str
    """`builtin`, `cifar10:ROOT` (and the like), or the path of an image folder."""
    split_dir: str
    """Folder for this split's checkpoints, history and image cache."""
    data_index: str | None = None
    """The run's data index (RUN/data-index.parquet) of an image folder: the split reads its
    classes' files from it instead of listing the folder. None: other data, or a run without one."""
    steps: int
    batch_size: int
    seed: int
    gan: dict = field(default_factory=dict)
    """GANConfig fields; num_classes is taken from `classes`."""
    checkpoint_every: int = 250
    history_every: int = 0
    """Steps per row of the loss history; 0: about 200 rows over the whole run."""
    report_every_seconds: float = 1.0
    guard: bool = True
    """Score the generator at every checkpoint with the split's real-data classifier, keep
    the best one (generator.best.safetensors), and report the classes it fails on."""
    guard_seed: int | None = None
    """Seed of the guard's classifier and fixed noise; None: the split id. The same for every
    seed a split is retried with, so that their scores compare."""

    @property
    def history_interval(self) -> int:
        return self.history_every or max(1, self.steps // 200)


@dataclass(frozen=True)
class TrainResult:
    """What a split's task returns. Here, not in workers/train.py, so that the coordinator
    unpickling it does not import torch (0.5 GB of RSS, bench/memory.py)."""

    split: int
    step: int
    loss_d: float | None
    loss_g: float | None
    class_accuracy: float | None
    generator_path: str
    train_seconds: float
    device: str
    resumed_from_step: int
    skipped_images: int
    quality: float | None = None
    """The guard's score of the best generator (None with the guard off)."""
    best_path: str | None = None
    best_step: int | None = None
    flags: list = field(default_factory=list)
    """The best generator's failing classes: {label, verdict, accuracy, diversity} each."""
