"""A split's checkpoints, in its own folder:

    state.pt                  full training state for resume: G, D, both optimisers, step,
                              random states. A safetensors file with its structure as JSON
                              (workers/state_format.py): loading it never unpickles anything.
                              (The name is kept from the torch.save pickles of earlier versions,
                              which resume still reads with weights_only=True; the next
                              checkpoint replaces them.)
    state.prev.pt             the state.pt before it: resume falls back to it when state.pt is
                              truncated or corrupt (at most two checkpoint intervals lost)
    generator.safetensors     G's weights alone, with the step in the file's metadata
    generator.json            G's config and the split's classes: enough to sample with no
                              training code state and no pickle
    generator.best.safetensors  the generator the quality guard scored best so far (over every
    generator.best.json         seed the split was trained with), its JSON holding the scores
    classifier.safetensors    the split's real-data classifier (workers/quality/yardstick.py)

Each file is written whole or not at all (manifests/storage/). On object storage, where
nothing can be renamed, state.pt and state.prev.pt are instead two uploads named by a
pointer, state.json: state-STEP-TOKEN.pt (manifests/storage/versioned.py).
"""
from __future__ import annotations

import json
import pickle
import re
import time
from dataclasses import dataclass

import torch
from safetensors.torch import save_file

from manifests.errors import UserError, first_line
from manifests.run_dir import training_states
from manifests.storage import Location, StorageError, location, redacted
from workers.generator_files import (
    FORMAT,
    GeneratorFileError,
    GeneratorInfo,
    generator_from,
)
from workers.model import Generator
from workers.state_format import is_pickled, load_state, save_state

BAD_STATE_NAME = "state.bad.pt"
"""Where a state.pt that resume had to skip is moved, for inspection."""
GENERATOR_WEIGHTS = "generator.safetensors"
BEST_GENERATOR_WEIGHTS = "generator.best.safetensors"


class CheckpointError(UserError):
    """A checkpoint that is missing, unreadable or inconsistent."""


def save_training_state(split_dir: "Location | str", state: dict) -> Location:
    """Write a new newest training state, keeping the one it replaces as the previous.

    A kill at any instant leaves the newest or the previous whole, which resume falls back to.
    """
    return training_states(split_dir).write(lambda tmp: save_state(state, tmp), tag=f"{int(state['step']):08d}")


@dataclass(frozen=True)
class LoadedState:
    state: dict
    path: Location
    newest: bool
    """False when the newest file was unusable and the previous one was loaded instead."""
    warning: str | None
    """Set when the newest file was unusable and an older one was loaded instead."""


READ_ATTEMPTS = 4
"""Reads of a training state before an I/O error is taken for what it says (a transient S3 or
NFS error is not a corrupt file): waits of 0.5, 1 and 2 s between them."""


def _read_with_retries(file: Location, load):
    """load(local path) of a local copy of `file`, retrying I/O errors with backoff. A file
    that is not there raises FileNotFoundError at once; an I/O error that outlasts the
    retries raises StorageError, which fails the attempt without judging the file."""
    for attempt in range(READ_ATTEMPTS):
        try:
            with file.reading() as local:
                return load(local)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if attempt == READ_ATTEMPTS - 1:
                raise StorageError(f"cannot read {redacted(str(file))} after {READ_ATTEMPTS} tries: "
                                   f"{first_line(exc, 160)}; check the storage and launch again") from None  # fmt: skip
            time.sleep(0.5 * 2**attempt)


def _load_state_file(file: Location, header_only: bool = False) -> dict:
    path = str(file)

    def load(local: str) -> dict:
        with open(local, "rb") as head:
            pickled = is_pickled(head.read(4))
        try:
            if pickled:
                return _load_pickled_state(local, path, mmap=header_only and file.is_local)
            return load_state(local, header_only)
        except CheckpointError:
            raise
        except MemoryError:
            raise  # this machine's trouble, not the file's
        except Exception as exc:  # torch raises several types for truncated or foreign files
            raise CheckpointError(f"{path} is unreadable ({type(exc).__name__}: {first_line(exc, 160)})") from None

    state = _read_with_retries(file, load)
    if not isinstance(state, dict) or "step" not in state or "generator" not in state:
        raise CheckpointError(f"{path} is not an acgan-ensemble training state")
    return state


def _load_pickled_state(local: str, path: str, mmap: bool) -> dict:
    """A state written by torch.save (versions before the safetensors format). torch's
    restricted unpickler loads tensors and plain containers only; torch>=2.6 (the floor)
    has no known way around it."""
    try:
        return torch.load(local, map_location="cpu", weights_only=True, mmap=mmap)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL ([\w.]+)", str(exc))
        what = f"a pickled reference to {found.group(1)}" if found else "pickled objects other than tensors"
        raise CheckpointError(f"{path} holds {what}, which is never run or loaded") from None


def load_training_state(split_dir: "Location | str", header_only: bool = False) -> LoadedState | None:
    """The newest usable training state, or None when the split has not checkpointed yet.

    Falls back from a bad or missing newest file to the previous one; raises CheckpointError
    naming every bad or missing file when no usable one is left: a split whose pointer names
    checkpoints that cannot be read fails, it never starts again from step 0. `header_only`
    leaves tensor data unread, and each tensor None (a cheap check).
    """
    split_dir = location(split_dir)
    problems: list[str] = []
    for i, path in enumerate(training_states(split_dir).named()):
        try:
            state = _load_state_file(path, header_only)
        except FileNotFoundError:
            problems.append(f"{path} is missing")
            continue
        except CheckpointError as exc:
            problems.append(str(exc))
            continue
        warning = f"resumed from {path.name} at step {state['step']}: {problems[0]}" if problems else None
        return LoadedState(state, path, i == 0, warning)
    if problems:
        raise CheckpointError(
            f"{'; '.join(problems)}; no usable checkpoint is left: delete {split_dir} to retrain this split"
        )
    return None


def info_path_of(weights_path: "Location | str") -> Location:
    """generator.safetensors -> generator.json; generator.best.safetensors -> generator.best.json."""
    weights_path = location(weights_path)
    return weights_path.parent / (weights_path.name.rsplit(".", 1)[0] + ".json")


def save_generator(split_dir: "Location | str", generator: Generator, info: GeneratorInfo,
                   file_name: str = GENERATOR_WEIGHTS) -> Location:  # fmt: skip
    weights = {name: t.detach().cpu().contiguous() for name, t in generator.state_dict().items()}
    weights_path = location(split_dir) / file_name
    weights_path.write_with(lambda tmp: save_file(weights, tmp, metadata={"step": str(info.step)}))
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
    if generator.grey:
        document["grey"] = True  # read back by generator_from
    info_path_of(weights_path).write_text(json.dumps(document, indent=2) + "\n")
    return weights_path


def load_generator(weights_path: "Location | str", device: str = "cpu") -> tuple[Generator, GeneratorInfo]:
    """Rebuild a generator from its safetensors file and the JSON beside it, in eval mode."""
    weights_path = location(weights_path)
    info_path = info_path_of(weights_path)
    try:
        document = json.loads(info_path.read_text())
        data = weights_path.read_bytes()
    except FileNotFoundError as exc:
        missing = exc.filename or (info_path if not info_path.exists() else weights_path)
        raise CheckpointError(f"generator checkpoint file {missing} is missing") from None
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"generator checkpoint {weights_path} is unreadable ({exc})") from None
    try:
        return generator_from(document, data, device)
    except GeneratorFileError as exc:
        raise CheckpointError(f"generator checkpoint {weights_path} {exc}") from None


def read_generator_info(weights_path: "Location | str") -> dict | None:
    """The JSON beside a generator's weights, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(info_path_of(weights_path).read_text())
    except (OSError, ValueError):
        return None
