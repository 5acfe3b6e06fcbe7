"""`ensemble report`: one self-contained HTML page of a whole run, to look at rather than read.

It reads the run through the storage layer (a local folder or object storage), draws each
split's pictures from its generator (the best one by default) and its curves from its
history, and writes one HTML file with every image embedded: it opens offline, in any
browser, and can be mailed or attached as it is. Images are WebP (a tenth of PNG's size for
these small noisy grids; every current browser shows them), curves PNG.

A running launch may be reported on: each split is shown as far as its last checkpoint, and
one with no checkpoint yet is shown as such.
"""
from __future__ import annotations

import base64
import datetime as dt
import io
import multiprocessing
import os
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ensemble.errors import EnsembleError
from ensemble.run_spec import RunSpec
from ensemble.generators import check_checkpoint, generator_path
from ensemble.status.read import RunStatus, read_status
from manifests.tables.history import HISTORY_NAME, read_history
from manifests.run_dir import RunDir, storage_errors
from manifests.tables.manifest import SplitRecord
from manifests.storage import Location, location
from manifests.storage.local import probe_write

REPORT_NAME = "report.html"
Progress = Callable[[int, int, SplitRecord], None]


@dataclass(frozen=True)
class Picture:
    uri: str
    """The image as a data: URI."""
    width: int
    height: int


@dataclass
class SplitPictures:
    """What the page shows of one split; None where there is nothing to show yet."""

    record: SplitRecord
    generator: str | None = None
    """`best` or `latest`: which of its generators drew the pictures."""
    step: int | None = None
    tiles: list[Picture] = field(default_factory=list)
    """Per class, its first sample (the mosaic's tiles)."""
    samples: Picture | None = None
    real: Picture | None = None
    within_class: Picture | None = None
    across_classes: Picture | None = None
    curves: Picture | None = None
    flags: dict[int, str] = field(default_factory=dict)
    """{global label: verdict} of the classes that are not ok (evaluation, else the guard)."""
    problem: str | None = None
    """Why its pictures are missing, in one line, when they are."""


@dataclass(frozen=True)
class ReportResult:
    path: Location
    bytes: int
    seconds: float
    drawn: int
    """Splits whose pictures were drawn (the others have no checkpoint yet)."""


def default_out(run_dir: str | os.PathLike) -> Location:
    """RUN/report.html for a run on local disk; ./report.html for one on object storage,
    where a browser cannot open it."""
    root = location(run_dir)
    return root / REPORT_NAME if root.is_local else location(REPORT_NAME)


def build_report(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, checkpoint: str = "best",
                 progress: Progress | None = None) -> ReportResult:  # fmt: skip
    start = time.monotonic()
    check_checkpoint(checkpoint)
    status = read_status(run_dir)
    run = RunDir(status.run_dir)
    spec = RunSpec.from_dict(run.read_spec())
    target = location(out) if out is not None else default_out(run.root)
    _check_writable(target)
    if not any(r.checkpoint for r in status.records):
        raise EnsembleError(
            f"nothing in {run.root} has been trained yet (no split has a checkpoint); run "
            f"`ensemble launch --run {run.root}` and report once a split has checkpointed"
        )

    from ensemble.report.page import render_page
    from ensemble.report.plots import curves_png

    pictures = [SplitPictures(record, flags=_flags(record, status)) for record in status.records]
    # Other processes draw the curves (matplotlib's drawing is mostly Python: a third of a
    # second a split) while this one draws the samples.
    spawn = multiprocessing.get_context("spawn")  # not fork: this process runs torch's threads
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1, mp_context=spawn) as pool:
        curves = [(shown, pool.submit(curves_png, rows)) for shown in pictures
                  if (rows := _history_rows(run, shown.record.split))]  # fmt: skip
        _draw_samples(run, spec, pictures, checkpoint, progress)
        for shown, drawn in curves:
            shown.curves = _png(drawn.result())

    page = render_page(status, spec, pictures, checkpoint, built=dt.datetime.now(dt.timezone.utc))
    data = page.encode("utf-8")
    with storage_errors(str(target)):
        try:
            target.write_bytes(data)
        except OSError as exc:
            raise EnsembleError(f"cannot write the report to {target}: {exc.strerror or exc}") from None
    drawn = sum(1 for p in pictures if p.tiles)
    return ReportResult(target, len(data), time.monotonic() - start, drawn)


def _history_rows(run: RunDir, split: int) -> list[dict]:
    """The split's history, or none before its first checkpoint: one read, no separate lookup."""
    try:
        with storage_errors(str(run.split_dir(split) / HISTORY_NAME)):
            return read_history(run.split_dir(split))
    except FileNotFoundError:
        return []


def _draw_samples(run: RunDir, spec: RunSpec, pictures: list[SplitPictures], checkpoint: str,
                  progress: Progress | None) -> None:  # fmt: skip
    """Each split's mosaic tiles, sample grid, real grid and interpolations, from its generator."""
    # torch is imported only now, after every check that can fail cheaply.
    import torch

    from workers.checkpoints import CheckpointError, load_generator
    from workers.datasets import real_examples
    from workers.datasets.errors import DatasetError
    from ensemble.report.figures import REAL_PER_CLASS, real_grid, split_figures

    for done, shown in enumerate(pictures, start=1):
        record = shown.record
        path, kind = generator_path(record, checkpoint)
        try:
            generator, info = load_generator(run.root / path) if path else (None, None)
        except CheckpointError as exc:
            shown.problem = str(exc)  # the other splits are still drawn
            generator = None
        if not path:
            shown.problem = f"no checkpoint yet ({record.status})"
        if generator is not None:
            shown.generator, shown.step = kind, info.step
            with torch.inference_mode():
                figures = split_figures(generator, len(record.classes))
            shown.tiles = [_webp(tile) for tile in figures.firsts]
            shown.samples, shown.within_class = _webp(figures.samples), _webp(figures.within_class)
            shown.across_classes = _webp(figures.across_classes)
            try:
                real = real_examples(spec.data, record.classes, info.config.image_size, REAL_PER_CLASS,
                                     cache_dir=run.split_dir(record.split), index=run.data_index_path)  # fmt: skip
                shown.real = _webp(real_grid(real.images, real.labels, len(record.classes)))
            except (DatasetError, OSError) as exc:
                shown.problem = f"its real images cannot be read ({str(exc).splitlines()[0]})"
        if progress is not None:
            progress(done, len(pictures), record)


def _check_writable(target: Location) -> None:
    """Fail before any drawing on an --out that cannot be written."""
    if not target.is_local:
        return  # the write says so; object stores have no cheap check
    path = Path(target)
    if path.is_dir():
        raise EnsembleError(f"--out {path} is a folder; give a file name such as {path / REPORT_NAME}")
    if path.suffix.lower() not in (".html", ".htm"):
        raise EnsembleError(f"--out {path} must end in .html")
    parent = path.parent
    if not parent.is_dir():
        raise EnsembleError(f"--out {path}: the folder {parent} does not exist; create it or choose another --out")
    try:  # the page is written beside its name, then renamed over it: the folder is what must be writable
        probe_write(parent)
    except OSError as exc:
        raise EnsembleError(f"--out {path} cannot be written ({exc.strerror or exc}); choose another --out") from None


def _flags(record: SplitRecord, status: RunStatus) -> dict[int, str]:
    """The split's classes that are not ok: `ensemble evaluate`'s verdicts when it ran, else
    the quality guard's (the manifest's flags)."""
    evaluated = (status.evaluated or {}).get(record.split)
    if evaluated is not None:
        return {int(label): verdict for label, verdict in evaluated["flagged"].items()}
    return {flag["label"]: flag["verdict"] for flag in record.flags}


def _webp(image) -> Picture:
    """A (3, H, W) uint8 tensor, as WebP."""
    from workers.images import encode

    data = encode(image, "WEBP", quality=90, method=4)
    return Picture(_data_uri(data, "image/webp"), image.shape[2], image.shape[1])


def _png(data: bytes) -> Picture:
    from PIL import Image

    width, height = Image.open(io.BytesIO(data)).size
    return Picture(_data_uri(data, "image/png"), width, height)


def _data_uri(data: bytes, mime: str) -> str:
    return f"data:{mime};base64,{base64.b64encode(data).decode('ascii')}"
