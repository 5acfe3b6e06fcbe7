"""How a split's manifest row changes as its task runs: with the progress it reports, the
result it returns, or the failure it ends in. The coordinator alone applies these."""
from __future__ import annotations

from typing import TYPE_CHECKING

from manifests.errors import first_line, last_line
from manifests.run_dir import RunDir
from manifests.tables.manifest import SplitRecord, Status, utc_now

if TYPE_CHECKING:
    from ensemble.launching.board import Drained


def apply_progress(record: SplitRecord, drained: Drained, run: RunDir) -> None:
    """Fold a split's reports since the last drain into its row."""
    now = utc_now()
    fields = drained.fields
    if drained.starts:
        record.attempt += drained.starts
        record.steps_redone += drained.steps_redone
        record.status = Status.RUNNING
        record.started_at = record.started_at or now
        record.error = None
        record.warning = fields.get("warning")
    for name in ("step", "loss_d", "loss_g", "class_accuracy", "node", "pid", "device", "train_seconds",
                 "checkpoint_step", "resumed_from", "skipped_images", "quality", "best_step"):  # fmt: skip
        if fields.get(name) is not None:
            setattr(record, name, fields[name])
    if fields.get("checkpoint"):
        record.checkpoint = run.relative(fields["checkpoint"])
    if fields.get("best_checkpoint"):
        record.best_checkpoint = run.relative(fields["best_checkpoint"])
    record.updated_at = now


def apply_result(record: SplitRecord, result, run: RunDir) -> None:
    """A split's task returned: succeeded, or flagged when its best generator fails classes."""
    now = utc_now()
    record.status = Status.FLAGGED if result.flags else Status.SUCCEEDED
    record.flags = list(result.flags)
    record.quality, record.best_step = result.quality, result.best_step
    record.best_checkpoint = run.relative(result.best_path) if result.best_path else None
    record.step = result.step
    record.loss_d, record.loss_g, record.class_accuracy = result.loss_d, result.loss_g, result.class_accuracy
    record.checkpoint = run.relative(result.generator_path)
    record.checkpoint_step = result.step
    record.device = result.device
    record.train_seconds = result.train_seconds
    record.skipped_images = result.skipped_images
    record.updated_at = record.finished_at = now
    record.error = None


def apply_failure(record: SplitRecord, exc: BaseException) -> None:
    """A split's task raised, or its worker died on every attempt Ray made."""
    import ray.exceptions

    if isinstance(exc, ray.exceptions.RayTaskError):  # training raised: its own error text
        cause = exc.cause or exc
        record.error = f"{type(cause).__name__}: {last_line(cause, 500)}"
    else:  # the worker process or its node died on every attempt Ray made
        record.error = (
            f"{type(exc).__name__}: the worker died on all {record.attempt} attempt(s) "
            f"(last: {first_line(exc) or 'no details'}); relaunch to resume from the checkpoint"
        )
    record.error = record.error[:500]
    record.status = Status.FAILED
    record.updated_at = record.finished_at = utc_now()
