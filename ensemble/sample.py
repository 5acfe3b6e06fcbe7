"""`ensemble sample`: route a label to its split, load only that split's generator, write PNGs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ensemble.errors import EnsembleError
from ensemble.routing import Route, Router
from manifests.run_dir import RunDir
from manifests.tables.manifest import SplitRecord

MAX_IMAGES = 10_000


@dataclass(frozen=True)
class SampleResult:
    route: Route
    checkpoint_step: int
    paths: list[Path]
    checkpoint_kind: str = "latest"
    """`best` or `latest`: which of the split's generators made the images."""


CHECKPOINTS = ("best", "latest")
"""Which generator of each split: the best by the quality guard's score, or the latest."""


def check_checkpoint(checkpoint: str) -> None:
    """Refuse a --checkpoint other than best or latest (sample, serve, report, evaluate)."""
    if checkpoint not in CHECKPOINTS:
        raise EnsembleError(f"--checkpoint must be best or latest, got {checkpoint!r}")


def generator_path(record: SplitRecord, checkpoint: str) -> tuple[str | None, str]:
    """A split's generator file (relative to the run) and its kind: the best one when asked
    for and there is one, else the latest."""
    check_checkpoint(checkpoint)
    if checkpoint == "best" and record.best_checkpoint:
        return record.best_checkpoint, "best"
    return record.checkpoint, "latest"


def sample_label(run_dir: str | Path, label: str, count: int, seed: int, out: Path | None = None,
                 scale: int = 1, checkpoint: str = "best") -> SampleResult:  # fmt: skip
    """Write `count` images of `label`: one PNG grid when `out` ends in .png, else one PNG each."""
    if not 1 <= count <= MAX_IMAGES:
        raise EnsembleError(f"--n must be between 1 and {MAX_IMAGES}, got {count}")
    if not 1 <= scale <= 16:
        raise EnsembleError(f"--scale must be between 1 and 16, got {scale}")
    run = RunDir(run_dir)
    route = Router(run.read_manifest()).resolve(label)
    record = route.record
    path, kind = generator_path(record, checkpoint)
    if not path:
        raise EnsembleError(
            f"split {record.split} (label {route.global_label}) has no checkpoint yet (status: {record.status}); "
            f"run `ensemble launch --run {run.root}` and sample once it has checkpointed"
        )
    out = Path(out) if out else Path("samples") / f"label-{route.global_label}.png"
    as_grid = out.suffix.lower() == ".png"
    target_dir = out.parent if as_grid else out
    if target_dir.exists() and not target_dir.is_dir():
        raise EnsembleError(f"--out {out}: {target_dir} is a file, not a folder")

    # torch is imported only now, after every check that can fail cheaply.
    from workers.checkpoints import load_generator
    from workers.images import generate, tile, write_png

    generator, info = load_generator(run.root / path)
    if info.classes != list(record.classes):
        raise EnsembleError(f"{path} belongs to classes {info.classes[:3]}..., not split {record.split}")
    images = generate(generator, route.local_label, count, seed)
    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        if as_grid:
            write_png(tile(images), out, scale)
            paths = [out]
        else:
            paths = [out / f"label{route.global_label:04d}_seed{seed}_{i:04d}.png" for i in range(count)]
            for image, path in zip(images, paths):
                write_png(image, path, scale)
    except OSError as exc:
        raise EnsembleError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return SampleResult(route, info.step, paths, kind)
