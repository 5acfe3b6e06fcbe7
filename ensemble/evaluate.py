"""`ensemble evaluate`: score every class of every finished split with the paper's measures
(workers/quality/evaluation.py), write RUN/evaluation.parquet, and say which classes fail.

Runs in this process, one split at a time, on the GPU when there is one: each split's
generator and real-data classifier are small next to the cost of loading its images.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ensemble.errors import EnsembleError
from ensemble.planning import splits_named
from ensemble.run_spec import RunSpec
from ensemble.generators import generator_path
from manifests.tables.evaluation import OK, count_verdicts, read_evaluation, write_evaluation
from manifests.run_dir import RunDir
from manifests.tables.manifest import SplitRecord, Status

DEFAULT_SAMPLES = 100
MAX_SAMPLES_PER_CLASS = 5000

Progress = Callable[[int, int, SplitRecord], None]
"""progress(splits done, splits in all, the split just done)."""


@dataclass(frozen=True)
class Evaluation:
    """What `ensemble evaluate` measured now: the rows of the splits it evaluated, the table's path."""

    rows: list[dict]
    path: Path
    seconds: float
    splits: int

    @property
    def counts(self) -> dict[str, int]:
        return count_verdicts(self.rows)

    def flagged(self) -> list[dict]:
        return [row for row in self.rows if row["verdict"] != OK]


def _chosen(records: list[SplitRecord], only: tuple[int, ...] | None, checkpoint: str, run: RunDir) -> list[SplitRecord]:
    if only is not None:
        records = splits_named(records, only)
        unready = [r.split for r in records if r.status not in Status.FINISHED]
        if unready:
            raise EnsembleError(
                f"split(s) {unready[:5]} have not finished training; run `ensemble launch --run {run.root}` first"
            )
    chosen = [r for r in records if r.status in Status.FINISHED and generator_path(r, checkpoint)[0]]
    if not chosen:
        raise EnsembleError(
            f"no split of {run.root} has finished training; run `ensemble launch --run {run.root}`, then evaluate"
        )
    return chosen


def evaluate_run(run_dir: str | Path, only: tuple[int, ...] | None = None, samples: int = DEFAULT_SAMPLES,
                 checkpoint: str = "best", classifier_weights: str | None = None,
                 progress: Progress | None = None) -> Evaluation:  # fmt: skip
    """Evaluate the finished splits (or those in `only`); nothing in the run changes on a bad input."""
    start = time.monotonic()
    if not 2 <= samples <= MAX_SAMPLES_PER_CLASS:
        raise EnsembleError(f"--samples must be between 2 and {MAX_SAMPLES_PER_CLASS}, got {samples}")
    run = RunDir(run_dir)
    records = run.read_manifest()
    spec = RunSpec.from_dict(run.read_spec())
    chosen = _chosen(records, only, checkpoint, run)
    if classifier_weights is not None and spec.num_classes != 1000:
        raise EnsembleError(
            f"--classifier-weights scores the 1000 ImageNet labels, but this run has {spec.num_classes} classes; "
            f"leave it out"
        )

    # torch is imported only now, after every check that can fail cheaply.
    from workers.devices import pick_device
    from workers.quality.imagenet import load_imagenet_classifier

    device = pick_device()
    imagenet = None
    if classifier_weights is not None:
        imagenet = load_imagenet_classifier(classifier_weights, device)  # ImageNetClassifierError: one line
    measured = []
    for done, record in enumerate(chosen, start=1):
        measured.append(_measure_split(run, spec, record, checkpoint, samples, device, imagenet))
        # Written as it goes, so that a crash or Ctrl-C keeps the splits measured so far (their
        # verdicts against the ceiling known so far; the write below gives every split of this
        # evaluate the final one).
        write_evaluation(run.root, _rows(run, measured[-1:], samples))
        if progress is not None:
            progress(done, len(chosen), record)
    rows = _rows(run, measured, samples)
    written = write_evaluation(run.root, rows)
    return Evaluation(rows, written, time.monotonic() - start, len(chosen))


@dataclass(frozen=True)
class _Measured:
    """One split's measures: per class, and the split's FID and KID."""

    record: SplitRecord
    kind: str
    step: int
    classes: list
    """workers.quality.evaluation.ClassEvaluation, one per local class."""
    fid: float | None
    kid: float | None


def _measure_split(run: RunDir, spec: RunSpec, record: SplitRecord, checkpoint: str, samples: int, device,
                   imagenet) -> _Measured:  # fmt: skip
    from workers.checkpoints import load_generator
    from workers.datasets import load_split_images
    from workers.images import generate
    from workers.quality.evaluation import evaluate_classes
    from workers.quality.guard import classifier_steps
    from workers.quality.imagenet import imagenet_accuracy
    from workers.quality.yardstick import load_or_train_yardstick

    path, kind = generator_path(record, checkpoint)
    generator, info = load_generator(run.root / path, device=str(device))
    data = load_split_images(spec.data, record.classes, info.config.image_size, cache_dir=run.split_dir(record.split),
                             index=run.data_index_path)  # fmt: skip
    yardstick = load_or_train_yardstick(run.split_dir(record.split), data.images, data.labels, len(record.classes),
                                        record.split, device, classifier_steps(spec.steps))  # fmt: skip
    fakes = [generate(generator, k, samples, seed=k) for k in range(len(record.classes))]
    classes, fid, kid = evaluate_classes(yardstick, data.images, data.labels, fakes, seed=record.split)
    if imagenet is not None:
        for row in classes:
            row.imagenet_accuracy = imagenet_accuracy(*imagenet, fakes[row.local_label], record.classes[row.local_label])
    return _Measured(record, kind, info.step, classes, fid, kid)


def _rows(run: RunDir, measured: list[_Measured], samples: int) -> list[dict]:
    """evaluation.parquet's rows of the splits measured now, each class with its verdict."""
    from workers.quality.evaluation import class_columns, verdict

    # The paper's ceiling: the highest mean MS-SSIM of any real class of the run, those
    # evaluated before (evaluation.parquet) included, so that --only gives the same verdicts.
    now = {m.record.split for m in measured}
    known = [c.real_ms_ssim for m in measured for c in m.classes if c.real_ms_ssim is not None]
    known += [r["real_ms_ssim"] for r in read_evaluation(run.root) if r["split"] not in now and r["real_ms_ssim"] is not None]
    ceiling = max(known) if known else None
    return [{"label": m.record.classes[c.local_label], "name": m.record.class_names[c.local_label],
             "class_id": m.record.class_ids[c.local_label], "split": m.record.split, "checkpoint": m.kind, "checkpoint_step": m.step, "samples": samples,
             **class_columns(c), "split_fid": m.fid, "split_kid": m.kid, "verdict": verdict(c, ceiling)}
            for m in measured for c in m.classes]  # fmt: skip
