"""The coordinator: plans a run, submits one Ray task per unfinished split, and keeps the
manifest (of which it is the only writer) up to date until every task has ended.

A relaunch on the same run skips succeeded splits and resubmits the rest; each resumes
from its latest checkpoint. The manifest is the single source of truth for that.

Faults: a worker or node that dies is retried by Ray (max_retries) and resumes from its
checkpoint; a coordinator that dies takes its private local cluster with it (Ray ties
those processes' fate to the driver) and leaves rows `running`, which `ensemble status`
shows as interrupted once the run's launch lock is free; Ctrl-C stops the tasks and
writes them as interrupted. Only one launch at a time holds a run's lock (on S3, its lease:
manifests/locks/lease.py).
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from ensemble.cluster import (
    check_cpus_per_split,
    check_requested_resources,
    choose_gpus_per_split,
    connect,
)
from ensemble.errors import EnsembleError
from ensemble.launching.drive import Launch, stop_signals
from ensemble.launching.listener import LaunchListener
from ensemble.launching.tasks import add_retry, job_for, plan_seeds, train_split_task
from ensemble.planning import plan_splits, splits_named
from ensemble.run_spec import RunSpec, check_positive, check_relaunch, check_seed, new_spec
from manifests.locks.holder import LaunchLockedError, refusal
from manifests.locks.launch_lock import live_launch, lock_for
from manifests.run_dir import RunDir, storage_errors, training_states
from manifests.tables.manifest import SplitRecord, Status, count_by_status
from manifests.tables.data_index import DataIndex, changes
from workers.datasets import BUILTIN, IMAGE_CHANNELS, ImageFolderDataset, is_image_folder, open_dataset
from workers.datasets.palette import IMAGE_SIZE as BUILTIN_IMAGE_SIZE


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
    """The quality guard (workers/quality/guard.py): score at each checkpoint, keep the best generator,
    flag the classes it fails on. None: on for a new run, as stored for a relaunch."""
    quality_retries: int | None = None
    """Fresh seeds a split whose best generator fails a class may be retrained with. None:
    DEFAULT_QUALITY_RETRIES in all, and flagged splits are left alone; given on a relaunch,
    flagged splits get this many more."""
    reindex: bool = False
    """On a relaunch whose image folder's files changed since the run listed them: train the
    unfinished splits on the files as they are now (without it, the relaunch is refused)."""


@dataclass(frozen=True)
class LaunchSummary:
    run_dir: object
    """The run's Location (manifests/storage/)."""
    counts: dict[str, int]
    submitted: int
    wall_seconds: float
    selected: dict[str, int] | None = None
    """Counts by status of the splits --only named (None without --only)."""


def _prepare(request: LaunchRequest, run: RunDir,
             listener: LaunchListener) -> tuple[RunSpec, list[SplitRecord], bool, DataIndex | None]:  # fmt: skip
    """The run's spec and manifest rows, from disk or newly planned, and a new run's data
    index (its image folder's listing; None for other data). Writes nothing."""
    for name in ("splits", "steps", "batch_size", "checkpoint_every"):
        check_positive(name, getattr(request, name))
    check_seed(request.seed)  # before anything is written: an overflowing seed broke the manifest's first write
    given = {name: getattr(request, name)
             for name in ("data", "splits", "steps", "batch_size", "seed", "checkpoint_every", "preset", "overrides",
                          "guard")}  # fmt: skip
    if run.exists():
        spec = RunSpec.from_dict(run.read_spec())
        check_relaunch(spec, str(run.root), **given)
        return spec, run.read_manifest(), False, None
    run.check_writable()
    with storage_errors(str(run.root)):
        occupied = run.root.exists() and bool(run.root.list())
    if occupied:
        raise EnsembleError(f"{run.root} exists and is not an ensemble run; pass a new or empty --run DIR")
    dataset = open_dataset(request.data or BUILTIN, progress=listener.listing)
    spec = new_spec(num_classes=len(dataset.class_names), **given)
    _check_data_fits(spec)
    plan = plan_splits(spec.num_classes, spec.splits)
    records = [
        SplitRecord(split=i, classes=classes, class_names=[dataset.class_names[c] for c in classes],
                    class_ids=[dataset.class_ids[c] for c in classes], total_steps=spec.steps)  # fmt: skip
        for i, classes in enumerate(plan)
    ]
    return spec, records, True, dataset.index if isinstance(dataset, ImageFolderDataset) else None


def _listed_again(request: LaunchRequest, run: RunDir, spec: RunSpec, listener: LaunchListener) -> DataIndex | None:
    """A relaunch lists its image folder again, so that splits never mix the files of two
    listings. Returns the index to write (the run has none yet, or --reindex takes the files
    as they are now), or None when the files are those of the run's index; refuses a change."""
    if not is_image_folder(spec.data):
        return None
    now = open_dataset(spec.data, progress=listener.listing).index
    with storage_errors(str(run.data_index_path)):
        if not run.data_index_path.exists():
            return now  # a run from before data indexes
        before = DataIndex.read(run.data_index_path)
    found = changes(before, now)
    if not found:
        return None
    if found.classes_added or found.classes_removed:
        raise EnsembleError(f"the data folder {spec.data} changed since this run listed it: {found.describe()}; a "
                            f"run's classes are fixed: put the folders back, or start a new --run")  # fmt: skip
    if not request.reindex:
        raise EnsembleError(f"the data folder {spec.data} changed since this run listed it: {found.describe()}; put "
                            f"the files back, or relaunch with --reindex to train the unfinished splits on them as "
                            f"they are now")  # fmt: skip
    return now


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
    Reads only the header of each local file (tensor data stays on disk); on
    object storage, where a file is never torn, the worker's load is the check."""
    if not run.root.is_local:
        return
    resuming = [r for r in todo if training_states(run.split_dir(r.split)).versions()]
    if not resuming:
        return  # a new run: torch is not imported, which keeps the coordinator at ~1/3 the memory
    from workers.checkpoints import CheckpointError, load_training_state

    for record in resuming:
        try:
            load_training_state(run.split_dir(record.split), header_only=True)
        except CheckpointError as exc:
            raise EnsembleError(f"split {record.split} cannot resume: {exc}") from None


def launch(request: LaunchRequest, listener: LaunchListener) -> LaunchSummary:
    start = time.monotonic()
    run = RunDir(request.run_dir)
    if request.quality_retries is not None and request.quality_retries < 0:
        raise EnsembleError(f"--quality-retries must be 0 or more, got {request.quality_retries}")
    spec, records, is_new, index = _prepare(request, run, listener)
    todo = _select(records, request.only, request.quality_retries)
    if not todo:
        named = None if request.only is None else count_by_status(splits_named(records, request.only))
        return LaunchSummary(run.root, count_by_status(records), 0, time.monotonic() - start, named)
    _check_before_cluster(request, run, todo, is_new)
    if not is_new:
        index = _listed_again(request, run, spec, listener)

    import ray

    cluster = connect(request.address)
    lock = lock_for(run.root)
    try:
        gpus = choose_gpus_per_split(cluster, request.gpus_per_split)
        check_cpus_per_split(cluster, request.cpus_per_split)
        # Nothing is written before the lock is held; what was read before is read again
        # under it, in case another launch changed the run in between.
        lock.acquire()
        records, todo, seed_limits = _claim(request, run, spec, records, todo, is_new, index)
        run.fence_with(lock)  # every manifest write from here on is fenced by the lock or lease
        run.write_manifest(records)
        listener.launched(cluster, spec, todo, gpus)
        flight = _submit(request, run, spec, records, todo, seed_limits, listener, gpus)
        try:
            with stop_signals() as stop:
                flight.drive(stop, lock.lost)
        except KeyboardInterrupt:
            flight.interrupt()
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


def _claim(request: LaunchRequest, run: RunDir, spec: RunSpec, records: list[SplitRecord], todo: list[SplitRecord],
           is_new: bool, index: DataIndex | None) -> tuple[list[SplitRecord], list[SplitRecord], dict[int, int]]:  # fmt: skip
    """Under the lock: write the data index (when there is a new one) and the spec of a new
    run, or read the rows again; give each split of this launch its seed and mark it pending
    (failed ones get another go; `running` rows are stale). Returns the rows, those this
    launch trains, and how many seeds each may have."""
    if is_new and run.exists():
        raise EnsembleError(f"another launch created {run.root} meanwhile; launch again to resume it")
    if index is not None:
        with storage_errors(str(run.data_index_path)):
            index.write(run.data_index_path)
    if is_new:
        run.write_spec(spec.to_dict())
    else:
        records = run.read_manifest()
        todo = _select(records, request.only, request.quality_retries)
    seed_limits = {r.split: plan_seeds(spec, r, request.quality_retries) for r in todo}  # before: it reads `flagged`
    for record in todo:
        record.status, record.error, record.finished_at = Status.PENDING, None, None
    return records, todo, seed_limits


def _submit(request: LaunchRequest, run: RunDir, spec: RunSpec, records: list[SplitRecord], todo: list[SplitRecord],
            seed_limits: dict[int, int], listener: LaunchListener, gpus: float) -> Launch:  # fmt: skip
    """One Ray task per split of `todo`, reporting to a new board."""
    import ray

    from ensemble.launching.board import start_board

    board = start_board({r.split: r.step for r in todo if r.step})
    task = ray.remote(train_split_task).options(
        num_cpus=request.cpus_per_split, num_gpus=gpus, max_retries=request.max_retries, retry_exceptions=False
    )

    def may_retry(record: SplitRecord) -> bool:
        """A flagged split gets a fresh seed, and a recipe that answers what failed, while its seed limit allows."""
        if len(record.seeds) >= seed_limits[record.split]:
            return False
        add_retry(spec, record)
        return True

    flight = Launch(run, records, board, listener, may_retry=may_retry,
                    submit=lambda record: task.remote(job_for(spec, record, run), board, request.cpus_per_split))  # fmt: skip
    flight.start(todo)
    return flight
