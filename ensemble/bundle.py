"""`ensemble export` and `ensemble.load_bundle`: a trained ensemble as one folder that samples
with torch and safetensors alone (no Ray, no pyarrow, no run folder, no training data).

    BUNDLE/
      bundle.json                     format, version, the run it came from, every class
                                      (label, name, class id, split, local class), every split
                                      (status, step, its generator file and size, its flags)
      generators/split-NNN.safetensors  each split's generator (best or latest, as exported)
      generators/split-NNN.json         its config and classes (workers/generator_files.py)
      README.md                       what was exported, the run's figures, how to load it

A bundle is written into a temporary folder beside the target and renamed into place, so a
kill leaves either no bundle or a whole one.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, Sequence

from ensemble.errors import EnsembleError
from ensemble.generators import GeneratorCache, check_count, check_seed, images_of_labels
from ensemble.routing import Router

if TYPE_CHECKING:
    import torch


class Run(Protocol):
    """What an export reads of an opened run (ensemble/api.py's Run, which calls export_run)."""

    uri: str
    records: list

    def location(self, path: str): ...


BUNDLE_FORMAT = "acgan-ensemble/bundle"
BUNDLE_VERSION = 1
BUNDLE_FILE = "bundle.json"


@dataclass
class BundleSplit:
    """A split as the bundle records it; routes like a manifest row (ensemble/routing.py)."""

    split: int
    classes: list[int]
    class_names: list[str]
    class_ids: list[str]
    status: str
    step: int | None = None
    kind: str | None = None
    """`best` or `latest`; None: the split had no generator when it was exported."""
    file: str | None = None
    bytes: int | None = None
    flags: list[dict] = field(default_factory=list)


def export_run(run: Run, out: str | os.PathLike, checkpoint: str = "best") -> dict:
    """Write `run`'s generators as a bundle at `out` (a new or empty local folder); returns bundle.json's content."""
    from ensemble.generators import check_checkpoint, generator_path, generator_step

    check_checkpoint(checkpoint)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise EnsembleError(f"--out {out} exists and is not an empty folder; pass a new folder")
    splits = []
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent if out.parent.is_dir() else None))
    try:
        (staging / "generators").mkdir()
        for record in run.records:
            path, kind = generator_path(record, checkpoint)
            entry = BundleSplit(record.split, list(record.classes), list(record.class_names), list(record.class_ids),
                                record.status, flags=[dict(f) for f in record.flags])  # fmt: skip
            if path:
                entry.file, entry.kind = _copy_generator(run, path, record.split, staging), kind
                entry.bytes = (staging / entry.file).stat().st_size
                entry.step = generator_step(record, kind)
            splits.append(entry)
        document = _document(run, splits, checkpoint)
        (staging / BUNDLE_FILE).write_text(json.dumps(document, indent=1) + "\n")
        (staging / "README.md").write_text(_readme(document))
        if out.exists():
            out.rmdir()  # empty, checked above
        os.replace(staging, out)
    except OSError as exc:
        raise EnsembleError(f"cannot write the bundle to {out}: {exc.strerror or exc}") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return document


def _copy_generator(run: Run, path: str, split: int, staging: Path) -> str:
    """Copy a split's generator (weights and JSON) into the bundle; returns the weights' name there."""
    from workers.checkpoints import info_path_of  # exporting reads a run: its storage layer is there

    source = run.location(path)
    file = f"generators/split-{split:03d}.safetensors"
    try:
        (staging / file).write_bytes(source.read_bytes())
        (staging / _info_file(file)).write_bytes(info_path_of(source).read_bytes())
    except FileNotFoundError as exc:
        raise EnsembleError(f"split {split}'s generator file {exc.filename or source} is missing; "
                            f"relaunch the run to write it again") from None  # fmt: skip
    return file


def _info_file(weights_file: str) -> str:
    """generators/split-041.safetensors -> generators/split-041.json"""
    return weights_file.removesuffix(".safetensors") + ".json"


def _document(run: Run, splits: list[BundleSplit], checkpoint: str) -> dict:
    from dataclasses import asdict

    from manifests.tables.manifest import Status

    missing = [s.split for s in splits if s.file is None]
    unfinished = [s.split for s in splits if s.status not in Status.FINISHED]
    flagged = [{"split": s.split, **f} for s in splits for f in s.flags]
    return {"format": BUNDLE_FORMAT, "version": BUNDLE_VERSION, "run": run.uri, "checkpoint": checkpoint,
            "splits": [asdict(s) for s in splits], "without_generator": missing, "unfinished": unfinished,
            "flagged_classes": flagged}  # fmt: skip


def _readme(document: dict) -> str:
    splits = document["splits"]
    classes = sum(len(s["classes"]) for s in splits)
    lines = [
        "# An exported acgan-ensemble",
        "",
        f"From the run `{document['run']}`: {len(splits)} splits, {classes} classes, each split's "
        f"{document['checkpoint']} generator.",
        "",
        "```python",
        "import ensemble",
        "bundle = ensemble.load_bundle('THIS_FOLDER')",
        f"images = bundle.sample({splits[0]['classes'][0] if splits else 0}, n=16)  # uint8, N x 3 x H x W",
        "```",
        "",
        "| what | count |",
        "|---|---|",
        f"| splits with a generator | {len(splits) - len(document['without_generator'])} |",
        f"| splits without one (not sampled) | {len(document['without_generator'])} {document['without_generator'][:20]} |",
        f"| splits still unfinished when exported | {len(document['unfinished'])} {document['unfinished'][:20]} |",
        f"| classes the quality guard flagged | {len(document['flagged_classes'])} |",
    ]
    for flag in document["flagged_classes"][:50]:
        lines.append(f"| - label {flag['label']} (split {flag['split']}): {flag['verdict']}, "
                     f"{flag['measure']} {flag['value']:.2f} | |")  # fmt: skip
    return "\n".join(lines) + "\n"


class Bundle:
    """An exported ensemble, read with torch and safetensors alone. `ensemble.load_bundle(folder)`."""

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.document = _read_document(self.folder)
        self.splits = [BundleSplit(**s) for s in self.document["splits"]]
        for split in self.splits:
            _check_file(self.folder, split)
        self._router = Router(self.splits)
        self._generators = GeneratorCache()

    def __repr__(self) -> str:
        return f"ensemble.Bundle({str(self.folder)!r}, splits={len(self.splits)})"

    def generator(self, label: int | str) -> tuple[torch.nn.Module, int]:
        """The generator that owns `label` (eval mode, CPU) and the label's local class."""
        route = self._router.resolve(label)
        split = route.record
        if split.file is None:
            raise EnsembleError(f"split {split.split} (label {route.global_label}) had no generator when "
                                f"{self.folder} was exported (status: {split.status})")  # fmt: skip
        return self._generators.get(split.split, lambda: _load(self.folder, split)), route.local_label

    def sample(self, label: int | str | Sequence[int | str], n: int = 16, seed: int = 0) -> torch.Tensor:
        """As Run.sample: `n` images of each label, uint8 N x 3 x H x W, the run's images for the same seed."""
        check_count(n)
        check_seed(seed)
        from workers.images import generate

        return images_of_labels(label, lambda one: generate(*self.generator(one), n, seed))


def load_bundle(folder: str | os.PathLike) -> Bundle:
    """Open a bundle written by `ensemble export`.

    >>> bundle = ensemble.load_bundle("exported/in1k")       # doctest: +SKIP
    >>> bundle.sample("balloon", n=4).shape                  # doctest: +SKIP
    """
    return Bundle(folder)


def _read_document(folder: Path) -> dict:
    path = folder / BUNDLE_FILE
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise EnsembleError(f"{path} is missing: {folder} is not a bundle written by `ensemble export`") from None
    except (OSError, ValueError) as exc:
        raise EnsembleError(f"{path} is unreadable ({exc}); export the run again") from None
    if not isinstance(document, dict) or document.get("format") != BUNDLE_FORMAT:
        raise EnsembleError(f"{path} is not an acgan-ensemble bundle; export the run again")
    version = document.get("version")
    if not isinstance(version, int) or version > BUNDLE_VERSION:
        raise EnsembleError(f"{path} has bundle version {version}, newer than this acgan-ensemble reads "
                            f"(1-{BUNDLE_VERSION}); upgrade acgan-ensemble to read it")  # fmt: skip
    if not isinstance(document.get("splits"), list):
        raise EnsembleError(f"{path} lists no splits; export the run again")
    return document


def _check_file(folder: Path, split: BundleSplit) -> None:
    """A generator the table names is there and whole (its size as exported)."""
    if split.file is None:
        return
    path = folder / split.file
    if not path.is_file() or not (folder / _info_file(split.file)).is_file():
        raise EnsembleError(f"{path} (split {split.split}) is missing from the bundle; export the run again")
    if path.stat().st_size != split.bytes:
        raise EnsembleError(f"{path} (split {split.split}) is {path.stat().st_size} bytes where the bundle "
                            f"recorded {split.bytes}: truncated or replaced; export the run again")  # fmt: skip


def _load(folder: Path, split: BundleSplit):
    from workers.generator_files import GeneratorFileError, generator_from

    path = folder / split.file
    try:
        document = json.loads((folder / _info_file(split.file)).read_text())
        generator, info = generator_from(document, path.read_bytes())
    except (OSError, ValueError) as exc:
        reason = str(exc) if isinstance(exc, GeneratorFileError) else f"is unreadable ({exc})"
        raise EnsembleError(f"{path} {reason}; export the run again") from None
    if info.classes != split.classes:
        raise EnsembleError(f"{path} belongs to classes {info.classes[:3]}..., not split {split.split}")
    return generator
