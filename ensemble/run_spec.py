"""What a run was launched with, stored as run.json, and how a relaunch is checked against it.

A relaunch resumes the stored run: options left out take the stored values, and an option
that contradicts them is refused rather than silently mixing two configurations.
"""
from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

from ensemble.errors import EnsembleError
from ensemble.planning import default_splits
from workers.config import GANConfig
from workers.datasets import normalise_spec
from workers.presets import DEFAULT_PRESET, PAPER_CLASSES_PER_SPLIT, REAL_IMAGES, get_preset

DEFAULT_DATA = "builtin"
DEFAULT_SEED = 0
SPEC_VERSION = 1
"""run.json's format; fields added since read with their defaults, so it changes only for a
field whose absence would mean something else."""


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    data: str
    """`builtin`, the absolute path of an image folder, or `cifar10:ROOT` (cifar100, mnist)
    with ROOT absolute: normalise_spec's form."""
    splits: int
    num_classes: int
    steps: int
    batch_size: int
    seed: int
    checkpoint_every: int
    preset: str = DEFAULT_PRESET
    """Runs from before presets existed were all cpu-32."""
    gan: dict = field(default_factory=lambda: get_preset(DEFAULT_PRESET).gan.to_dict())
    """The preset's model config with any --set overrides applied."""
    guard: bool = True
    """The quality guard (workers/quality/guard.py); runs from before it get it on their next launch."""

    def to_dict(self) -> dict:
        return {"version": SPEC_VERSION, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> "RunSpec":
        """A run.json's spec. Fields added since it was written take their defaults; one
        written by a newer release, which may mean something this one cannot honour, is refused."""
        version = values.get("version", SPEC_VERSION)
        if not isinstance(version, int) or version > SPEC_VERSION:
            raise EnsembleError(
                f"run.json has version {version!r}, newer than this acgan-ensemble reads ({SPEC_VERSION}); "
                f"upgrade acgan-ensemble to use this run"
            )
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# The launch options a relaunch may repeat but not change.
PINNED_OPTIONS = ("data", "splits", "steps", "batch_size", "seed", "checkpoint_every", "preset", "guard")


def parse_overrides(pairs: tuple[str, ...] | None) -> dict:
    """`--set loss=hinge --set d_widths=[64,128,256]` -> {"loss": "hinge", "d_widths": [64, 128, 256]}.
    Values are JSON (true, 0.1, [1, 2]); anything else is taken as a string."""
    overrides = {}
    for pair in pairs or ():
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise EnsembleError(f"--set {pair!r} must look like FIELD=VALUE, e.g. --set loss=hinge")
        try:
            overrides[name.strip()] = json.loads(text)
        except json.JSONDecodeError:
            overrides[name.strip()] = text
    return overrides


def model_config(preset: str, overrides: dict, num_classes: int) -> dict:
    """The preset's GAN config with overrides, checked: a bad field or value is refused here."""
    if "num_classes" in overrides and overrides["num_classes"] != num_classes:
        raise EnsembleError(
            f"--set num_classes: each model has the classes of one split ({num_classes} classes per split here), "
            f"which --splits sets; leave --set num_classes out"
        )
    try:
        base = get_preset(preset).gan.to_dict()
        unknown = sorted(set(overrides) - set(base) - {"num_classes"})
        if unknown:
            raise ValueError(f"--set {unknown[0]}: no such model field; fields are {', '.join(base)}")
        return GANConfig.from_dict({**base, **overrides, "num_classes": num_classes}).to_dict()
    except (ValueError, TypeError) as exc:
        raise EnsembleError(f"bad model config: {exc}") from None


def check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise EnsembleError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


MAX_RUN_SEED = 2**32 - 1
"""A run's seed: each split's seeds derive from it (tasks.base_seed, times 1,000,003 plus a
stride per quality retry) and must stay within the manifest's int64 and torch's seeds."""


def check_seed(value: int | None) -> None:
    if value is not None and not 0 <= value <= MAX_RUN_SEED:
        raise EnsembleError(f"--seed must be between 0 and {MAX_RUN_SEED}, got {value}")


def new_spec(*, data: str | None, splits: int | None, num_classes: int, steps: int | None,
             batch_size: int | None, seed: int | None, checkpoint_every: int | None,
             preset: str | None = None, overrides: dict | None = None, guard: bool | None = None) -> RunSpec:  # fmt: skip
    """A new run's spec; options left out take the preset's recipe (steps, batch size) and a
    split per PAPER_CLASSES_PER_SPLIT classes. Real images (any --data but builtin) with no
    --preset take REAL_IMAGES's recipe, and its classes per split."""
    data = normalise_spec(data or DEFAULT_DATA)
    default_steps, classes_per_split = None, PAPER_CLASSES_PER_SPLIT
    if preset is None and data != DEFAULT_DATA:
        preset, default_steps = REAL_IMAGES.preset, REAL_IMAGES.steps
        overrides = {**REAL_IMAGES.overrides, **(overrides or {})}
        classes_per_split = REAL_IMAGES.classes_per_split
    preset_name = preset or DEFAULT_PRESET
    splits = splits or default_splits(num_classes, classes_per_split)
    gan = model_config(preset_name, overrides or {}, -(-num_classes // splits))  # classes per model, at most
    if "g_kernel" in (overrides or {}) and gan["g_upsample"] == "nearest":
        raise EnsembleError(
            "--set g_kernel changes G's transposed convolutions, but this model upsamples with nearest neighbours "
            "and 3x3 convolutions; add --set g_upsample=transpose, or leave g_kernel out"
        )
    recipe = get_preset(preset_name)
    return RunSpec(
        data=data,
        splits=splits,
        num_classes=num_classes,
        steps=steps or default_steps or recipe.steps,
        batch_size=batch_size or recipe.batch_size,
        seed=DEFAULT_SEED if seed is None else seed,
        checkpoint_every=checkpoint_every or recipe.checkpoint_every,
        preset=preset_name,
        gan=gan,
        guard=True if guard is None else guard,
    )


def check_relaunch(stored: RunSpec, run_dir: str, **given: object) -> None:
    """Refuse options that contradict the stored run; None means "not given"."""
    for name in PINNED_OPTIONS:
        value = given.get(name)
        if value is None:
            continue
        if name == "data":
            value = normalise_spec(str(value))
        if value != getattr(stored, name):
            flag = name.replace("_", "-")
            if name == "guard":
                shown = "--guard" if stored.guard else "--no-guard"
                raise EnsembleError(f"run {run_dir} was launched with {shown}; leave it out to resume it, "
                                    f"or pass a new --run DIR")  # fmt: skip
            raise EnsembleError(
                f"run {run_dir} was launched with --{flag} {getattr(stored, name)}, not {value}; "
                f"leave --{flag} out to resume it, or pass a new --run DIR"
            )
    overrides = given.get("overrides")
    if overrides:
        stored_gan = GANConfig.from_dict(stored.gan)
        for name, value in overrides.items():
            wanted = model_config(stored.preset, {**_as_overrides(stored_gan), name: value}, stored_gan.num_classes)
            if GANConfig.from_dict(wanted) != stored_gan:
                raise EnsembleError(
                    f"run {run_dir} was launched with {name}={json.dumps(getattr(stored_gan, name, None))}, "
                    f"not {json.dumps(value)}; leave --set {name} out to resume it, or pass a new --run DIR"
                )


def _as_overrides(gan: GANConfig) -> dict:
    values = gan.to_dict()
    values.pop("num_classes")
    return values
