"""A split's checkpoints, in its own folder:

    state.pt                  full training state for resume: G, D, both optimisers, step,
                              random states. Loaded with weights_only=True: no pickled code runs.
    state.prev.pt             the state.pt before it: resume falls back to it when state.pt is
                              truncated or corrupt (at most two checkpoint intervals lost)
    generator.safetensors     G's weights alone, with the step in the file's metadata
    generator.json            G's config and the split's classes: enough to sample with no
                              training code state and no pickle
    generator.best.safetensors  the generator the quality guard scored best so far (over every
    generator.best.json         seed the split was trained with), its JSON holding the scores
    classifier.safetensors    the split's real-data classifier (workers/quality.py)

Each file is written under a temporary name and moved into place atomically.
"""
from __future__ import annotations

import json
import pickle
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file

from manifests.atomic_files import atomic_write
from manifests.errors import UserError, first_line
from workers.config import GANConfig
from workers.model import Generator

STATE_NAME = "state.pt"
PREVIOUS_STATE_NAME = "state.prev.pt"
BAD_STATE_NAME = "state.bad.pt"
"""Where a state.pt that resume had to skip is moved, for inspection."""
GENERATOR_WEIGHTS = "generator.safetensors"
GENERATOR_INFO = "generator.json"
BEST_GENERATOR_WEIGHTS = "generator.best.safetensors"
FORMAT = "acgan-ensemble/generator"


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or inconsistent."""


def save_training_state(split_dir: Path, state: dict) -> Path:
    """Write state.pt, keeping the one it replaces as state.prev.pt.

    A kill between the two renames leaves state.prev.pt alone, which resume falls back to.
    """
    split_dir.mkdir(parents=True, exist_ok=True)
    path = split_dir / STATE_NAME

    atomic_write(path, lambda tmp: torch.save(state, tmp), keep_previous=split_dir / PREVIOUS_STATE_NAME)
    return path


@dataclass(frozen=True)
class LoadedState:
    state: dict
    path: Path
    warning: str | None
    """Set when the newest file was unusable and an older one was loaded instead."""


def _load_state_file(path: Path, mmap: bool = False) -> dict:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"a pickled reference to {found.group(1)}" if found else "pickled objects other than tensors"
        raise CheckpointError(f"{path} holds {what}, which is never run or loaded") from None
    except Exception as exc:  # torch raises several types for truncated or foreign files
        raise CheckpointError(f"{path} is unreadable ({type(exc).__name__}: {first_line(exc, 160)})") from None
    if not isinstance(state, dict) or "step" not in state or "generator" not in state:
        raise CheckpointError(f"{path} is not an acgan-ensemble training state")
    return state


def load_training_state(split_dir: Path, mmap: bool = False) -> LoadedState | None:
    """The newest usable training state, or None when the split has not checkpointed yet.

    Falls back from a bad state.pt to state.prev.pt; raises CheckpointError naming every
    bad file when no usable one is left. `mmap` leaves tensor data on disk (a cheap check).
    """
    problems: list[str] = []
    for name in (STATE_NAME, PREVIOUS_STATE_NAME):
        path = split_dir / name
        if not path.exists():
            continue
        try:
            state = _load_state_file(path, mmap)
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        warning = f"resumed from {name} at step {state['step']}: {problems[0]}" if problems else None
        return LoadedState(state, path, warning)
    if problems:
        raise CheckpointError(
            f"{'; '.join(problems)}; no usable checkpoint is left: delete {split_dir} to retrain this split"
        )
    return None


@dataclass(frozen=True)
class GeneratorInfo:
    config: GANConfig
    step: int
    split: int
    classes: list[int]
    class_names: list[str]
    quality: dict | None = None
    """The guard's scores of this generator (best checkpoints): seed, score, per-class figures."""


def info_path_of(weights_path: Path) -> Path:
    """generator.safetensors -> generator.json; generator.best.safetensors -> generator.best.json."""
    return Path(weights_path).with_suffix(".json")


def save_generator(split_dir: Path, generator: Generator, info: GeneratorInfo,
                   file_name: str = GENERATOR_WEIGHTS) -> Path:  # fmt: skip
    split_dir.mkdir(parents=True, exist_ok=True)
    weights = {name: t.detach().cpu().contiguous() for name, t in generator.state_dict().items()}
    weights_path = split_dir / file_name
    atomic_write(weights_path, lambda tmp: save_file(weights, tmp, metadata={"step": str(info.step)}))
    document = {
        "format": FORMAT,
        "version": 1,
        "config": info.config.to_dict(),
        "step": info.step,
        "split": info.split,
        "classes": info.classes,
        "class_names": info.class_names,
    }
    if info.quality is not None:
        document["quality"] = info.quality
    info_path = info_path_of(weights_path)
    atomic_write(info_path, lambda tmp: Path(tmp).write_text(json.dumps(document, indent=2) + "\n"))
    return weights_path


def load_generator(weights_path: Path, device: str = "cpu") -> tuple[Generator, GeneratorInfo]:
    """Rebuild a generator from its safetensors file and the JSON beside it, in eval mode."""
    weights_path = Path(weights_path)
    info_path = info_path_of(weights_path)
    try:
        document = json.loads(info_path.read_text())
        if document.get("format") != FORMAT:
            raise ValueError(f"format is {document.get('format')!r}, expected {FORMAT!r}")
        config = GANConfig.from_dict(document["config"])
        with safe_open(str(weights_path), framework="pt") as f:
            step = int((f.metadata() or {}).get("step", document["step"]))
        weights = load_file(str(weights_path), device=device)
    except FileNotFoundError as exc:
        raise CheckpointError(f"generator checkpoint file {exc.filename} is missing") from None
    except (OSError, ValueError, KeyError, TypeError, SafetensorError) as exc:
        raise CheckpointError(f"generator checkpoint {weights_path} is unreadable ({exc})") from None
    generator = Generator(config).to(device)
    try:
        generator.load_state_dict(weights)
    except RuntimeError as exc:
        raise CheckpointError(f"generator checkpoint {weights_path} does not match its config ({exc})") from None
    generator.eval()
    info = GeneratorInfo(
        config=config,
        step=step,
        split=int(document["split"]),
        classes=list(document["classes"]),
        class_names=list(document["class_names"]),
        quality=document.get("quality"),
    )
    return generator, info


def read_generator_info(weights_path: Path) -> dict | None:
    """The JSON beside a generator's weights, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(info_path_of(weights_path).read_text())
    except (OSError, ValueError):
        return None
