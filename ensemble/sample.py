"""`ensemble sample`: a label's images from the Python API (ensemble/api.py), written as PNGs."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ensemble.api import Run
from ensemble.errors import EnsembleError
from ensemble.generators import check_count, check_seed
from ensemble.routing import Route


@dataclass(frozen=True)
class SampleResult:
    route: Route
    checkpoint_step: int
    paths: list[Path]
    checkpoint_kind: str = "latest"
    """`best` or `latest`: which of the split's generators made the images."""


def sample_label(run_dir: str | Path, label: str, count: int, seed: int, out: Path | None = None,
                 scale: int = 1, checkpoint: str = "best") -> SampleResult:  # fmt: skip
    """Write `count` images of `label`: one PNG grid when `out` ends in .png, else one PNG each."""
    if not 1 <= scale <= 16:
        raise EnsembleError(f"--scale must be between 1 and 16, got {scale}")
    check_count(count)
    check_seed(seed)
    run = Run(run_dir)
    route = run.route(label)
    out = Path(out) if out else Path("samples") / f"label-{route.global_label}.png"
    as_grid = out.suffix.lower() == ".png"
    target_dir = out.parent if as_grid else out
    if target_dir.exists() and not target_dir.is_dir():
        raise EnsembleError(f"--out {out}: {target_dir} is a file, not a folder")
    sampled = run.sample_route(label, count, seed, checkpoint)

    from workers.images import tile, write_png  # torch: sampling imported it already

    try:
        target_dir.mkdir(parents=True, exist_ok=True)
        if as_grid:
            write_png(tile(sampled.images), out, scale)
            paths = [out]
        else:
            paths = [out / f"label{route.global_label:04d}_seed{seed}_{i:04d}.png" for i in range(count)]
            for image, path in zip(sampled.images, paths):
                write_png(image, path, scale)
    except OSError as exc:
        raise EnsembleError(f"cannot write to {out}: {exc.strerror or exc}") from None
    return SampleResult(route, sampled.step, paths, sampled.kind)
