"""The coordinator: plans a run, submits one Ray task per unfinished split, and keeps the
manifest (of which it is the only writer) up to date until every task has ended.

A relaunch on the same run skips succeeded splits and resubmits the rest; each resumes
from its latest checkpoint. The manifest is the single source of truth for that.

Faults: a worker or node that dies is retried by Ray (max_retries) and resumes from its
checkpoint; a coordinator that dies takes its private local cluster with it (Ray ties
those processes' fate to the driver) and leaves rows `running`, which `ensemble status`
shows as interrupted once the run's launch lock is free; Ctrl-C stops the tasks and
writes them as interrupted. Only one launch at a time holds a run's lock (on S3, its lease:
manifests/lease.py).
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ensemble.cluster import (
    Cluster,
    check_cpus_per_split,
    check_requested_resources,
    choose_gpus_per_split,
    connect,
)
from ensemble.errors import EnsembleError, Interrupted
from ensemble.planning import plan_splits, splits_named
from ensemble.run_spec import RunSpec, check_positive, check_relaunch, new_spec
from manifests.errors import first_line, last_line
from manifests.launch_lock import LaunchLockedError, live_launch, lock_for, refusal
from manifests.run_dir import RunDir, storage_errors, training_states
from manifests.schema import SplitRecord, Status, count_by_status, utc_now
from workers.config import TrainJob
from workers.verdicts import describe_flags
from workers.datasets import BUILTIN, IMAGE_CHANNELS, open_dataset
from workers.datasets.builtin import IMAGE_SIZE as BUILTIN_IMAGE_SIZE

if TYPE_CHECKING:
    from ensemble.progress import Drained

MANIFEST_WRITE_INTERVAL_S = 1.0
DEFAULT_QUALITY_RETRIES = 1
SEED_STRIDE = 1_000_000_007
"""Between the seeds of a split's quality retries (a prime: no two splits' seeds meet)."""


@dataclass(frozen=True, kw_only=True)
class LaunchRequest:
    run_dir: str | Path
    """A local folder or a storage URI (s3://bucket/prefix)."""
    splits: int | None = None
    data: str | None = None
    steps: int | None = None
    batch_size: int | None = None
    seed: int | None = None
    checkpoint_every: int | None = None
    preset: str | None = None
    overrides: dict | None = None
    """GANConfig fields that replace the preset's (`--set FIELD=VALUE`)."""
    address: str | None = None
    gpus_per_split: float | None = None
    cpus_per_split: float = 1.0
    max_retries: int = 2
    """Ray retries of a split whose worker process or node died. A split whose training
    raises is not retried within a launch (its error would repeat: training is
    deterministic); it is marked failed and the next launch tries it again."""
    only: tuple[int, ...] | None = None
    """Train just these split ids (a first look before the whole run); None: every split."""
    guard: bool | None = None
    """The quality guard (workers/guard.py): score at each checkpoint, keep the best generator,
    flag the classes it fails on. None: on for a new run, as stored for a relaunch."""
    quality_retries: int | None = None
    """Fresh seeds a split whose best generator fails a class may be retrained with. None:
    DEFAULT_QUALITY_RETRIES in all, and flagged splits are left alone; given on a relaunch,
    flagged splits get this many more."""


@dataclass(frozen=True)
class LaunchSummary:
    run_dir: object
    """The run's Location (manifests/storage.py)."""
    counts: dict[str, int]
    submitted: int
    wall_seconds: float
    selected: dict[str, int] | None = None
    """Counts by status of the splits --only named (None without --only)."""


class LaunchListener(Protocol):
    def launched(self, cluster: Cluster, spec: RunSpec, todo: list[SplitRecord], gpus_per_split: float) -> None: ...
    def updated(self, records: list[SplitRecord]) -> None: ...
    def finished(self, record: SplitRecord) -> None: ...
    def retrying(self, record: SplitRecord) -> None: ...


class QuietListener:
    """A LaunchListener that shows nothing: for code that drives launch() itself (tests, bench/)."""

    def launched(self, *args) -> None: ...
    def updated(self, records) -> None: ...
    def finished(self, record) -> None: ...
    def retrying(self, record) -> None: ...


def _train_split_task(job: TrainJob, board, cpus: float):
    """Body of each split's Ray task: the plain training function, wired to the board."""
    import ray
    import ray.exceptions
    import torch

    from workers.train import describe_device, pick_device, train_split

    torch.set_num_threads(max(1, int(cpus)))
    node = ray.util.get_node_ip_address()
    gpu_ids = ray.get_gpu_ids()
    device = pick_device(prefer_cuda=bool(gpu_ids))

    last_report = []

    def report(event: dict) -> None:
        last_report[:] = [board.report.remote(job.split, {**event, "node": node})]

    try:
        return train_split(job, report=report, device=device, device_label=describe_device(device, gpu_ids))
    finally:
        # An actor runs one caller's calls in order: once the last report is in, all are.
        # Without this the task's result could reach the coordinator before its reports,
        # which would then be lost (the coordinator stops draining when no task is left).
        if last_report:
            try:
                ray.get(last_report[0])
            except ray.exceptions.RayError:
                pass  # the board is gone (its coordinator died): the result or error matters more


def _prepare(request: LaunchRequest, run: RunDir) -> tuple[RunSpec, list[SplitRecord], bool]:
    """The run's spec and manifest rows, from disk or newly planned. Writes nothing."""
    for name in ("splits", "steps", "batch_size", "checkpoint_every"):
        check_positive(name, getattr(request, name))
    given = {name: getattr(request, name)
             for name in ("data", "splits", "steps", "batch_size", "seed", "checkpoint_every", "preset", "overrides",
                          "guard")}  # fmt: skip
    if run.exists():
        spec = RunSpec.from_dict(run.read_spec())
        check_relaunch(spec, str(run.root), **given)
        return spec, run.read_manifest(), False
    run.check_writable()
    with storage_errors(str(run.root)):
        occupied = run.root.exists() and bool(run.root.list())
    if occupied:
        raise EnsembleError(f"{run.root} exists and is not an ensemble run; pass a new or empty --run DIR")
    dataset = open_dataset(request.data or BUILTIN)
    spec = new_spec(num_classes=len(dataset.class_names), **given)
    _check_data_fits(spec)
    plan = plan_splits(spec.num_classes, spec.splits)
    records = [
        SplitRecord(split=i, classes=classes, class_names=[dataset.class_names[c] for c in classes],
                    class_ids=[dataset.class_ids[c] for c in classes], total_steps=spec.steps)  # fmt: skip
        for i, classes in enumerate(plan)
    ]
    return spec, records, True


def _check_data_fits(spec: RunSpec) -> None:
    """Refuse a model the data cannot feed, before a cluster starts rather than in every split."""
    size, channels = spec.gan["image_size"], spec.gan["channels"]
    if spec.data == BUILTIN and size != BUILTIN_IMAGE_SIZE:
        raise EnsembleError(
            f"the built-in data is {BUILTIN_IMAGE_SIZE}x{BUILTIN_IMAGE_SIZE} but --preset {spec.preset} makes "
            f"{size}x{size} images; pass --data with your images, or --preset cpu-32 or cifar-32"
        )
    if channels != IMAGE_CHANNELS:
        raise EnsembleError(
            f"--set channels={channels}: every dataset is read as {IMAGE_CHANNELS}-channel RGB (grayscale images "
            f"repeated), so the model must make {IMAGE_CHANNELS}; leave --set channels out"
        )


def _apply_progress(record: SplitRecord, drained: Drained, run: RunDir) -> None:
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


def _apply_result(record: SplitRecord, result, run: RunDir) -> None:
    now = utc_now()
    record.status = Status.FLAGGED if result.flags else Status.SUCCEEDED
    record.flagged = describe_flags(result.flags) or None
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


def _apply_failure(record: SplitRecord, exc: BaseException) -> None:
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


def _select(records: list[SplitRecord], only: tuple[int, ...] | None,
            quality_retries: int | None = None) -> list[SplitRecord]:  # fmt: skip
    """The splits this launch trains: every unfinished one (and flagged ones, when given
    quality retries), or those of them in `only`."""
    retrain_flagged = bool(quality_retries)
    todo = [r for r in records if r.status not in Status.FINISHED or retrain_flagged and r.status == Status.FLAGGED]
    if only is None:
        return todo
    named = {r.split for r in splits_named(records, only)}
    return [r for r in todo if r.split in named]


def _check_resumable(run: RunDir, todo: list[SplitRecord]) -> None:
    """Refuse up front, naming the file, a split whose checkpoints are all unusable (truncated,
    foreign, or carrying pickled code), rather than fail it after the cluster has started.
    Reads only the small pickle part of each local file (tensor data stays on disk); on
    object storage, where a file is never torn, the worker's load is the check."""
    if not run.root.is_local:
        return
    resuming = [r for r in todo if training_states(run.split_dir(r.split)).versions()]
    if not resuming:
        return  # a new run: torch is not imported, which keeps the coordinator at ~1/3 the memory
    from workers.checkpoints import CheckpointError, load_training_state

    for record in resuming:
        try:
            load_training_state(run.split_dir(record.split), mmap=True)
        except CheckpointError as exc:
            raise EnsembleError(f"split {record.split} cannot resume: {exc}") from None


def launch(request: LaunchRequest, listener: LaunchListener) -> LaunchSummary:
    start = time.monotonic()
    run = RunDir(request.run_dir)
    if request.quality_retries is not None and request.quality_retries < 0:
        raise EnsembleError(f"--quality-retries must be 0 or more, got {request.quality_retries}")
    spec, records, is_new = _prepare(request, run)
    todo = _select(records, request.only, request.quality_retries)
    if not todo:
        named = None if request.only is None else count_by_status(splits_named(records, request.only))
        return LaunchSummary(run.root, count_by_status(records), 0, time.monotonic() - start, named)
    _check_before_cluster(request, run, todo, is_new)

    import ray

    from ensemble.progress import start_board

    cluster = connect(request.address)
    lock = lock_for(run.root)
    try:
        gpus = choose_gpus_per_split(cluster, request.gpus_per_split)
        check_cpus_per_split(cluster, request.cpus_per_split)
        # Nothing is written before the lock is held; what was read before is read again
        # under it, in case another launch changed the run in between.
        lock.acquire()
        if is_new:
            if run.exists():
                raise EnsembleError(f"another launch created {run.root} meanwhile; launch again to resume it")
            run.write_spec(spec.to_dict())
        else:
            records = run.read_manifest()
            todo = _select(records, request.only, request.quality_retries)
        seed_limits = {r.split: _plan_seeds(spec, r, request.quality_retries) for r in todo}
        for record in todo:  # failed splits get another go; `running` rows are stale
            record.status, record.error, record.finished_at = Status.PENDING, None, None
        run.write_manifest(records)
        listener.launched(cluster, spec, todo, gpus)

        board = start_board({r.split: r.step for r in todo if r.step})
        task = ray.remote(_train_split_task).options(
            num_cpus=request.cpus_per_split, num_gpus=gpus, max_retries=request.max_retries, retry_exceptions=False
        )
        by_split = {r.split: r for r in records}

        def submit(record: SplitRecord):
            return task.remote(_job(spec, record, run), board, request.cpus_per_split)

        def retry_for_quality(record: SplitRecord, result) -> bool:
            """Submit a flagged split again with a fresh seed, while its seed limit allows."""
            if not result.flags or len(record.seeds) >= seed_limits[record.split]:
                return False
            record.seeds.append(_next_seed(spec, record))
            pending[submit(record)] = record.split
            return True

        pending = {submit(record): record.split for record in todo}
        try:
            with _stop_signals() as stop:
                _drive(pending, board, by_split, records, run, listener, stop, retry_for_quality, lock.lost)
        except KeyboardInterrupt:
            _stop_interrupted(pending, board, by_split, records, run)
    finally:
        lock.release()
        if cluster.started_here:
            ray.shutdown()
    return LaunchSummary(run.root, count_by_status(records), len(todo), time.monotonic() - start)


def _check_before_cluster(request: LaunchRequest, run: RunDir, todo: list[SplitRecord], is_new: bool) -> None:
    """Everything that can be refused without a cluster, refused before one starts."""
    check_requested_resources(cpus_per_split=request.cpus_per_split, gpus_per_split=request.gpus_per_split)
    holder = live_launch(run.root)
    if holder is not None:  # the common case; the lock itself is taken once the cluster is up
        raise LaunchLockedError(refusal(run.root, holder))
    if not is_new:  # a new run's folder was checked by _prepare
        run.check_writable()
    _check_resumable(run, todo)


def _stop_interrupted(pending: dict, board, by_split: dict[int, SplitRecord], records: list[SplitRecord],
                      run: RunDir) -> None:  # fmt: skip
    """Ctrl-C or SIGTERM: cancel the tasks, record how far they got as interrupted, and raise
    Interrupted (the CLI's exit code 130)."""
    import ray

    for ref in pending:
        ray.cancel(ref, force=True)
    with contextlib.suppress(Exception):  # Ctrl-C reaches Ray's processes too; the write comes first
        _drain(board, by_split, run, timeout=2.0)  # the steps reached, for the record
    for split in pending.values():
        by_split[split].status = Status.INTERRUPTED
    run.write_manifest(records)
    raise Interrupted(
        f"interrupted: {len(pending)} split(s) stopped, their checkpoints kept; "
        f"resume with `ensemble launch --run {run.root}`"
    ) from None


def _drain(board, by_split: dict[int, SplitRecord], run: RunDir, timeout: float | None = None) -> bool:
    """Fold the board's reports into the rows; True when there were any."""
    import ray

    drained = ray.get(board.drain.remote(), timeout=timeout)
    for split, reports in drained.items():
        _apply_progress(by_split[split], reports, run)
    return bool(drained)


@contextlib.contextmanager
def _stop_signals():
    """Ctrl-C (SIGINT) and SIGTERM (`kill`, a scheduler or Kubernetes stopping the pod) both
    stop a launch: tasks cancelled, manifest written, resumable. Installed after ray.init,
    whose own SIGTERM handler would otherwise exit at once. The handler raises
    KeyboardInterrupt and also sets the yielded flag, which _drive checks every turn: an
    interrupt raised while Ray's own code runs may be caught there, the flag is not.
    Only the main thread may set handlers."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def interrupt(signum, frame):
        stop.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _drive(pending: dict, board, by_split: dict[int, SplitRecord], records: list[SplitRecord],
           run: RunDir, listener: LaunchListener, stop: threading.Event, retry_for_quality,
           lease_lost: threading.Event) -> None:  # fmt: skip
    """Fold worker progress and task results into the manifest until no task is left."""
    import ray

    last_write = time.monotonic()
    dirty = False
    while pending:
        if stop.is_set():
            raise KeyboardInterrupt
        if lease_lost.is_set():  # another launch owns the run now: write nothing more
            for ref in pending:
                ray.cancel(ref, force=True)
            raise EnsembleError(
                f"this launch lost its lease on {run.root} (it could not renew it in time and another launch "
                f"took the run over); its tasks were stopped, and the other launch carries on"
            )
        ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=1.0)
        dirty = _drain(board, by_split, run) or dirty
        for ref in ready:
            record = by_split[pending.pop(ref)]
            dirty = True
            try:
                result = ray.get(ref)
            except ray.exceptions.RayError as exc:
                _apply_failure(record, exc)
            else:
                _apply_result(record, result, run)
                if retry_for_quality(record, result):
                    record.status, record.finished_at = Status.RUNNING, None
                    listener.retrying(record)
                    continue
            listener.finished(record)
        now = time.monotonic()
        if dirty and (not pending or ready or now - last_write >= MANIFEST_WRITE_INTERVAL_S):
            run.write_manifest(records)
            last_write, dirty = now, False
        listener.updated(records)


def _base_seed(spec: RunSpec, record: SplitRecord) -> int:
    """A distinct, reproducible seed per split."""
    return spec.seed * 1_000_003 + record.split


def _next_seed(spec: RunSpec, record: SplitRecord) -> int:
    return _base_seed(spec, record) + SEED_STRIDE * len(record.seeds)


def _plan_seeds(spec: RunSpec, record: SplitRecord, quality_retries: int | None) -> int:
    """Give the split its first seed (or a fresh one, for a flagged split retried by a
    relaunch), and return how many seeds it may have in all by the end of this launch."""
    if not record.seeds:
        record.seeds = [_base_seed(spec, record)]
    if quality_retries is None:
        return max(len(record.seeds), 1 + DEFAULT_QUALITY_RETRIES)
    if record.status == Status.FLAGGED:  # this relaunch's first retry starts now
        record.seeds.append(_next_seed(spec, record))
        record.flagged = None
        return len(record.seeds) - 1 + quality_retries
    return len(record.seeds) + quality_retries


def _job(spec: RunSpec, record: SplitRecord, run: RunDir) -> TrainJob:
    return TrainJob(
        split=record.split,
        classes=list(record.classes),
        class_names=list(record.class_names),
        data=spec.data,
        split_dir=str(run.split_dir(record.split).absolute()),
        steps=spec.steps,
        batch_size=spec.batch_size,
        seed=record.seeds[-1] if record.seeds else _base_seed(spec, record),
        gan=spec.gan,
        checkpoint_every=spec.checkpoint_every,
        guard=spec.guard,
    )
