"""What each split's Ray task runs, and with which job: the plain training function wired to
the progress board, the TrainJob a manifest row becomes, and the seeds of quality retries."""
from __future__ import annotations

import json

from ensemble.launching.recipes import parse_recipe, retry_recipe
from ensemble.run_spec import RunSpec
from manifests.run_dir import RunDir
from manifests.tables.manifest import SplitRecord, Status
from workers.config import TrainJob
from workers.datasets import is_image_folder

DEFAULT_QUALITY_RETRIES = 2
"""As many as recipes.py's ladders have rungs: a split is flagged only after every rung was tried.
With 1, the second rung was never reached by default, and on an AVX512-BF16 EPYC `make demo`
ended with a split flagged that the second rung then fixed (bench/README.md)."""
SEED_STRIDE = 1_000_000_007
"""Between the seeds of a split's quality retries (a prime: no two splits' seeds meet)."""


def train_split_task(job: TrainJob, board, cpus: float):
    """Body of each split's Ray task: the plain training function, wired to the board."""
    import ray
    import ray.exceptions
    import torch

    from workers.devices import describe_device, pick_device
    from workers.train import train_split

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


def job_for(spec: RunSpec, record: SplitRecord, run: RunDir) -> TrainJob:
    """The job of a split's next attempt: its classes, its newest seed, and the run's recipe
    with what that seed's attempt changes (a quality retry's, recipes.py)."""
    recipe = current_recipe(record)
    return TrainJob(
        split=record.split,
        classes=list(record.classes),
        class_names=list(record.class_names),
        data=spec.data,
        split_dir=str(run.split_dir(record.split).absolute()),
        data_index=str(run.data_index_path.absolute()) if is_image_folder(spec.data) else None,
        steps=recipe.get("steps", spec.steps),
        batch_size=spec.batch_size,
        seed=record.seeds[-1] if record.seeds else base_seed(spec, record),
        gan={**spec.gan, **recipe.get("set", {})},
        checkpoint_every=spec.checkpoint_every,
        guard=spec.guard,
    )


def current_recipe(record: SplitRecord) -> dict:
    """What the attempt of the split's newest seed changes ({}: the run's recipe)."""
    if not record.seeds or len(record.recipes) < len(record.seeds):
        return {}  # a run from before recipes were recorded: every seed had the run's recipe
    return parse_recipe(record.recipes[len(record.seeds) - 1])


def add_retry(spec: RunSpec, record: SplitRecord) -> None:
    """Give a flagged split its next seed and the recipe that answers what failed (its
    `flags`), and the steps that recipe trains for."""
    record.recipes += ["{}"] * (len(record.seeds) - len(record.recipes))
    retry = len(record.seeds)  # the first seed was the plain attempt
    recipe = retry_recipe(record.flags, retry, spec.gan, spec.steps)
    record.seeds.append(next_seed(spec, record))
    record.recipes.append(json.dumps(recipe, sort_keys=True))
    record.total_steps = recipe.get("steps", spec.steps)


def base_seed(spec: RunSpec, record: SplitRecord) -> int:
    """A distinct, reproducible seed per split."""
    return spec.seed * 1_000_003 + record.split


def next_seed(spec: RunSpec, record: SplitRecord) -> int:
    """The seed of a split's next quality retry."""
    return base_seed(spec, record) + SEED_STRIDE * len(record.seeds)


def plan_seeds(spec: RunSpec, record: SplitRecord, quality_retries: int | None) -> int:
    """Give the split its first seed (or a fresh one, for a flagged split retried by a
    relaunch), and return how many seeds it may have in all by the end of this launch."""
    if not record.seeds:
        record.seeds, record.recipes = [base_seed(spec, record)], ["{}"]
    if quality_retries is None:
        return max(len(record.seeds), 1 + DEFAULT_QUALITY_RETRIES)
    if record.status == Status.FLAGGED:  # this relaunch's first retry starts now
        add_retry(spec, record)
        record.flags = []
        return len(record.seeds) - 1 + quality_retries
    return len(record.seeds) + quality_retries
