"""The Python API, what `import ensemble` exposes: open a run, read where it stands, sample
it by label as tensors, launch one. The CLI's `sample` and `launch` go through it.

    >>> import ensemble
    >>> run = ensemble.open("ensemble-run")          # doctest: +SKIP
    >>> images = run.sample(417, n=16)               # doctest: +SKIP
    >>> images.shape, images.dtype                   # doctest: +SKIP
    (torch.Size([16, 3, 32, 32]), torch.uint8)

Opening and reading a run imports neither Ray nor torch; sampling imports torch. Every error
meant for the user is an `EnsembleError` with the CLI's one-line message.
"""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable, Sequence

from ensemble.errors import EnsembleError
from ensemble.generators import (
    GeneratorCache,
    LoadedGenerator,
    check_checkpoint,
    check_count,
    check_seed,
    images_of_labels,
    run_generator,
)
from ensemble.routing import Route, Router
from manifests.errors import UserError
from manifests.run_dir import RunDir

if TYPE_CHECKING:
    import pandas as pd
    import torch

    from manifests.tables.manifest import SplitRecord

GENERATORS = GeneratorCache()
"""The process's loaded generators, shared by every Run: bounded (GENERATORS_KEPT)."""

Label = int | str
"""A class as the CLI takes it: its index (417 or "417"), its name, or its class id (a WordNet id)."""


def _as_ensemble_errors(function):
    """Errors meant for the user leave the API as EnsembleError, whichever layer raised them
    (a run folder, a table, a checkpoint), with the same one-line message as the CLI's."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except EnsembleError:
            raise
        except UserError as exc:
            raise EnsembleError(str(exc)) from None

    return wrapper


@dataclass(frozen=True)
class Sampled:
    """What Run.sample_route made: the images and where they came from."""

    images: torch.Tensor
    route: Route
    step: int
    kind: str


class Run:
    """A trained (or training) run, read-only: no lock is taken, nothing is written.

    Opened with `ensemble.open`. The manifest is read when the run is opened; `refresh()`
    reads it again (a launch still running moves its splits on).
    """

    def __init__(self, root: str | os.PathLike):
        self._dir = RunDir(root)
        self._router = Router(self._dir.read_manifest())

    def __repr__(self) -> str:
        return f"ensemble.Run({str(self._dir.root)!r}, splits={len(self._router.records)})"

    @property
    def uri(self) -> str:
        """The run's folder or storage URI."""
        return str(self._dir.root)

    @_as_ensemble_errors
    def refresh(self) -> Run:
        """Read the manifest again (a launch may have moved on); returns this run."""
        self._router = Router(self._dir.read_manifest())
        return self

    @_as_ensemble_errors
    def status(self) -> pd.DataFrame:
        """One row per split, the manifest's columns typed as the manifest stores them; a
        split whose launch is gone shows `interrupted`, as `ensemble status` does.

        >>> run.status()[["split", "status", "step"]].head(2)      # doctest: +SKIP
           split     status  step
        0      0    pending     0
        1      1    pending     0
        """
        import pyarrow as pa

        from ensemble.status.read import read_status
        from manifests.tables.manifest import MANIFEST_SCHEMA

        records = read_status(self._dir.root).records
        return pa.Table.from_pylist([r.to_row() for r in records], schema=MANIFEST_SCHEMA).to_pandas()

    def classes(self) -> pd.DataFrame:
        """One row per class: label, name, class_id, split, local_class (its index in its split)."""
        import pandas as pd

        rows = [{"label": label, "name": name, "class_id": class_id, "split": r.split, "local_class": local}
                for r in self._router.records
                for local, (label, name, class_id) in enumerate(zip(r.classes, r.class_names, r.class_ids))]  # fmt: skip
        return pd.DataFrame(rows).sort_values("label", ignore_index=True)

    @_as_ensemble_errors
    def sample(self, label: Label | Sequence[Label], n: int = 16, seed: int = 0, checkpoint: str = "best") -> torch.Tensor:
        """`n` images of a class (or of each class of a list, in its order) as one uint8 tensor
        N x 3 x H x W: the very images `ensemble sample` writes for the same arguments.

        >>> run.sample(417, n=4).shape                         # doctest: +SKIP
        torch.Size([4, 3, 32, 32])
        >>> run.sample(["417", "violet bar on maroon window"], n=2).shape  # doctest: +SKIP
        torch.Size([4, 3, 32, 32])
        """
        return images_of_labels(label, lambda one: self.sample_route(one, n, seed, checkpoint).images)

    @_as_ensemble_errors
    def sample_route(self, label: Label, n: int = 16, seed: int = 0, checkpoint: str = "best") -> Sampled:
        """`sample` of one label, with its route, the generator's step and kind (best/latest)."""
        check_count(n)
        check_seed(seed)
        route, loaded = self._loaded(label, checkpoint)
        from workers.images import generate

        images = generate(loaded.generator, route.local_label, n, seed)
        return Sampled(images, route, loaded.info.step, loaded.kind)

    @_as_ensemble_errors
    def route(self, label: Label) -> Route:
        """Which split owns `label`, and its index there.

        >>> route = run.route("417")                           # doctest: +SKIP
        >>> route.record.split, route.local_label              # doctest: +SKIP
        (41, 7)
        """
        return self._router.resolve(label)

    @_as_ensemble_errors
    def generator(self, label: Label, checkpoint: str = "best") -> tuple[torch.nn.Module, int]:
        """The split's generator that owns `label` (eval mode, CPU) and the label's local class,
        for your own noise: `G(z, torch.full((N,), local))` gives images in [-1, 1].

        >>> G, local = run.generator(417)                      # doctest: +SKIP
        >>> z = torch.randn(8, G.config.z_dim)                # doctest: +SKIP
        >>> G(z, torch.full((8,), local)).shape               # doctest: +SKIP
        torch.Size([8, 3, 32, 32])
        """
        route, loaded = self._loaded(label, checkpoint)
        return loaded.generator, route.local_label

    def _loaded(self, label: Label, checkpoint: str) -> tuple[Route, LoadedGenerator]:
        """The label's route and its split's generator (checkpoint checked before the label)."""
        check_checkpoint(checkpoint)
        route = self._router.resolve(label)
        return route, run_generator(GENERATORS, self._dir, route.record, checkpoint, route.global_label)

    @_as_ensemble_errors
    def evaluation(self) -> pd.DataFrame | None:
        """`ensemble evaluate`'s table, one row per class, or None before the run was evaluated."""
        import pyarrow as pa

        from manifests.tables.evaluation import EVALUATION_SCHEMA, read_evaluation

        rows = read_evaluation(self._dir.root)
        if not rows:
            return None
        return pa.Table.from_pylist(rows, schema=EVALUATION_SCHEMA).to_pandas()

    @_as_ensemble_errors
    def export(self, out: str | os.PathLike, checkpoint: str = "best") -> dict:
        """Write this run's generators as a bundle at `out`, a new or empty local folder
        (`ensemble export`); `ensemble.load_bundle(out)` reads it. Returns bundle.json's content."""
        from ensemble.bundle import export_run

        return export_run(self, out, checkpoint)

    def location(self, path: str):
        """A file of the run (a path relative to it, as the manifest names files), as a Location."""
        return self._dir.root / path

    @property
    def records(self) -> list[SplitRecord]:
        """The manifest's rows as read at open (or the last refresh)."""
        return self._router.records


@_as_ensemble_errors
def open(run: str | os.PathLike = "ensemble-run") -> Run:  # noqa: A001 - ensemble.open reads as open a run
    """Open a run for reading: a local folder or a storage URI (`s3://bucket/prefix`).

    >>> run = ensemble.open("s3://bucket/runs/in1k")          # doctest: +SKIP
    """
    return Run(run)


@dataclass(frozen=True)
class LaunchEvent:
    """What `launch(progress=...)` is told: `launched`, `updated`, `finished` or `retrying`,
    the split it is about (None for the others), and the counts by status of every split."""

    kind: str
    split: int | None
    counts: dict[str, int]
    steps_done: int
    steps_total: int


class _CallbackListener:
    """A LaunchListener (ensemble/launching/listener.py) that hands each event to a callback."""

    def __init__(self, progress: Callable[[LaunchEvent], None] | None):
        self.progress = progress
        self.records: list[SplitRecord] = []

    def _tell(self, kind: str, split: int | None) -> None:
        from manifests.tables.manifest import count_by_status

        if self.progress is not None:
            records = self.records
            self.progress(LaunchEvent(kind, split, count_by_status(records), sum(r.step for r in records),
                                      sum(r.total_steps for r in records)))  # fmt: skip

    def listing(self, done, total, files) -> None:
        pass  # the image folder's listing, before the first event: only the CLI shows it

    def launched(self, cluster, spec, todo, gpus_per_split) -> None:
        self._tell("launched", None)

    def updated(self, records) -> None:
        self.records = records
        self._tell("updated", None)

    def finished(self, record) -> None:
        self._tell("finished", record.split)

    def retrying(self, record) -> None:
        self._tell("retrying", record.split)


@_as_ensemble_errors
def launch(run: str | os.PathLike = "ensemble-run", *, progress: Callable[[LaunchEvent], None] | None = None,
           **options) -> Run:  # fmt: skip
    """Train every unfinished split of a run, as `ensemble launch` does, and return the Run.

    `options` are the CLI's, as keyword arguments: splits, data, preset, overrides (a dict
    of model fields, `--set`), steps, batch_size, seed, checkpoint_every, address,
    gpus_per_split, cpus_per_split, only (split ids), quality_retries, guard, reindex. `progress` is
    called with a LaunchEvent at each change; nothing is printed.

    >>> run = ensemble.launch("runs/demo", splits=100, only=(41,), steps=100)   # doctest: +SKIP
    """
    import dataclasses

    from ensemble.launching.coordinator import LaunchRequest, launch as run_launch

    known = {f.name for f in dataclasses.fields(LaunchRequest)} - {"run_dir"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise EnsembleError(f"launch() got unknown option(s) {', '.join(unknown)}; it takes {', '.join(sorted(known))}")
    run_launch(LaunchRequest(run_dir=run, **options), _CallbackListener(progress))
    return Run(run)
