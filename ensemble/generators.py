"""Which generator of a split answers for a label, and a process's cache of loaded ones.

Shared by every reader of a run: `ensemble sample`, the Python API (ensemble/api.py), the
report and evaluation. torch is imported only when a generator is loaded.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Hashable, TypeVar

from ensemble.errors import EnsembleError

if TYPE_CHECKING:
    import torch

    from manifests.run_dir import RunDir
    from manifests.tables.manifest import SplitRecord
    from workers.checkpoints import GeneratorInfo
    from workers.model import Generator

MAX_IMAGES = 10_000
"""At most this many images per label and call (`ensemble sample --n`, the API, a bundle)."""

CHECKPOINTS = ("best", "latest")
"""Which generator of each split: the best by the quality guard's score, or the latest."""

GENERATORS_KEPT = 8
"""Generators one process keeps loaded (least recently used out first), as a Serve replica
does by default: about 1.5 MB each for cpu-32, 100-300 MB for the paper's models."""


def check_count(n: int) -> None:
    if not 1 <= n <= MAX_IMAGES:
        raise EnsembleError(f"--n must be between 1 and {MAX_IMAGES}, got {n}")


MAX_SEED = 2**63 - 1
"""torch.Generator().manual_seed takes seeds up to 2**64 - 1; an int64 everywhere else."""


def check_seed(seed: int) -> None:
    if not 0 <= seed <= MAX_SEED:
        raise EnsembleError(f"--seed must be between 0 and {MAX_SEED}, got {seed}")


def check_checkpoint(checkpoint: str) -> None:
    """Refuse a --checkpoint other than best or latest (sample, serve, report, evaluate, the API)."""
    if checkpoint not in CHECKPOINTS:
        raise EnsembleError(f"--checkpoint must be best or latest, got {checkpoint!r}")


def generator_path(record: SplitRecord, checkpoint: str) -> tuple[str | None, str]:
    """A split's generator file (relative to the run) and its kind: the best one when asked
    for and there is one, else the latest."""
    check_checkpoint(checkpoint)
    if checkpoint == "best" and record.best_checkpoint:
        return record.best_checkpoint, "best"
    return record.checkpoint, "latest"


def generator_step(record: SplitRecord, kind: str) -> int | None:
    """The training step of a split's `best` or `latest` generator, as the manifest records it."""
    return record.best_step if kind == "best" else record.checkpoint_step


def images_of_labels(label, images_of: Callable[[object], torch.Tensor]) -> torch.Tensor:
    """`images_of(label)` for one label, or for each label of a list, concatenated in its order
    (Run.sample and Bundle.sample take either)."""
    labels = [label] if isinstance(label, (int, str)) else list(label)
    if not labels:
        raise EnsembleError("no label given; pass a label or a list of them")
    parts = [images_of(one) for one in labels]
    if len(parts) == 1:
        return parts[0]
    import torch

    return torch.cat(parts)


@dataclass(frozen=True)
class LoadedGenerator:
    generator: Generator
    """In eval mode, on the CPU."""
    info: GeneratorInfo
    kind: str
    """`best` or `latest`: which of the split's generators this is."""


Loaded = TypeVar("Loaded")


class GeneratorCache:
    """Loaded generators by key (a file and its step), at most `capacity`, least recently used
    out first, so a process that samples every label holds a bounded number. Thread-safe."""

    def __init__(self, capacity: int = GENERATORS_KEPT):
        self.capacity = capacity
        self._loaded: OrderedDict[Hashable, object] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._loaded)

    def get(self, key: Hashable, load: Callable[[], Loaded]) -> Loaded:
        """The value kept under `key`, or `load()`'s, kept from now on."""
        with self._lock:
            if key in self._loaded:
                self._loaded.move_to_end(key)
                return self._loaded[key]
        value = load()
        with self._lock:
            self._loaded[key] = value
            while len(self._loaded) > self.capacity:
                self._loaded.popitem(last=False)
        return value


def run_generator(cache: GeneratorCache, run: RunDir, record: SplitRecord, checkpoint: str, label: int) -> LoadedGenerator:
    """`record`'s generator of the kind `checkpoint` asks for, through `cache`: a new
    checkpoint of the split (another step) is loaded afresh."""
    path, kind = generator_path(record, checkpoint)
    if not path:
        raise EnsembleError(
            f"split {record.split} (label {label}) has no checkpoint yet (status: {record.status}); "
            f"run `ensemble launch --run {run.root}` and sample once it has checkpointed"
        )
    key = (str(run.root / path), generator_step(record, kind))
    return cache.get(key, lambda: _load(run, record, path, kind))


def _load(run: RunDir, record: SplitRecord, path: str, kind: str) -> LoadedGenerator:
    from workers.checkpoints import load_generator  # torch, only when a generator is needed

    generator, info = load_generator(run.root / path)
    if info.classes != list(record.classes):
        raise EnsembleError(f"{path} belongs to classes {info.classes[:3]}..., not split {record.split}")
    return LoadedGenerator(generator, info, kind)
