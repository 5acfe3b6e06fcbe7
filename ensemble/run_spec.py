"""What a run was launched with, stored as run.json, and how a relaunch is checked against it.

A relaunch resumes the stored run: options left out take the stored values, and an option
that contradicts them is refused rather than silently mixing two configurations.
"""
from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field

from ensemble.errors import EnsembleError
from workers.config import cpu_32

DEFAULT_SPLITS = 100
DEFAULT_DATA = "builtin"
# Sized so the built-in 100-split run finishes in minutes on a 2-core CPU machine.
DEFAULT_STEPS = 450
DEFAULT_BATCH_SIZE = 32
DEFAULT_CHECKPOINT_EVERY = 200
DEFAULT_SEED = 0


@dataclass(frozen=True, kw_only=True)
class RunSpec:
    data: str
    """`builtin`, or the absolute path of an image folder."""
    splits: int
    num_classes: int
    steps: int
    batch_size: int
    seed: int
    checkpoint_every: int
    gan: dict = field(default_factory=lambda: cpu_32().to_dict())

    def to_dict(self) -> dict:
        return {"version": 1, **dataclasses.asdict(self)}

    @classmethod
    def from_dict(cls, values: dict) -> "RunSpec":
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


# The launch options a relaunch may repeat but not change.
PINNED_OPTIONS = ("data", "splits", "steps", "batch_size", "seed", "checkpoint_every")


def normalise_data(data: str) -> str:
    return data if data == DEFAULT_DATA else os.path.abspath(os.path.expanduser(data))


def check_positive(name: str, value: int | None) -> None:
    if value is not None and value < 1:
        raise EnsembleError(f"--{name.replace('_', '-')} must be at least 1, got {value}")


def new_spec(*, data: str | None, splits: int | None, num_classes: int, steps: int | None,
             batch_size: int | None, seed: int | None, checkpoint_every: int | None) -> RunSpec:  # fmt: skip
    return RunSpec(
        data=normalise_data(data or DEFAULT_DATA),
        splits=splits or DEFAULT_SPLITS,
        num_classes=num_classes,
        steps=steps or DEFAULT_STEPS,
        batch_size=batch_size or DEFAULT_BATCH_SIZE,
        seed=DEFAULT_SEED if seed is None else seed,
        checkpoint_every=checkpoint_every or DEFAULT_CHECKPOINT_EVERY,
    )


def check_relaunch(stored: RunSpec, run_dir: str, **given: object) -> None:
    """Refuse options that contradict the stored run; None means "not given"."""
    for name in PINNED_OPTIONS:
        value = given.get(name)
        if value is None:
            continue
        if name == "data":
            value = normalise_data(str(value))
        if value != getattr(stored, name):
            flag = name.replace("_", "-")
            raise EnsembleError(
                f"run {run_dir} was launched with --{flag} {getattr(stored, name)}, not {value}; "
                f"leave --{flag} out to resume it, or pass a new --run DIR"
            )
