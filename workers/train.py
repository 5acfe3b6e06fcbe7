"""One split's training job: a plain function of (job, report callback). No Ray here.

The coordinator runs `train_split` as a Ray task per split; tests and users can call it
directly. It resumes from the split's latest checkpoint when there is one, so a retried
or relaunched split loses at most one checkpoint interval of work.
"""
from __future__ import annotations

import math
import os
import time
from typing import Callable

import torch

from workers import tensorboard
from workers.checkpoints import (
    BAD_STATE_NAME,
    GENERATOR_WEIGHTS,
    CheckpointError,
    GeneratorInfo,
    load_training_state,
    save_generator,
    save_training_state,
)
from manifests.run_dir import PREVIOUS_STATE_NAME, STATE_NAME, training_states
from manifests.tables.history import GUARD_METRICS, HISTORY_NAME, METRICS, ROW_WIDTH, padded_rows, write_history
from manifests.storage import Location, location
from workers.config import GANConfig, TrainJob, TrainResult
from workers.devices import describe_device, pick_device
from workers.datasets import load_split_images
from workers.quality.guard import QualityGuard
from workers.quality.measures import quality_score
from workers.step import GAN, ClassIndex, draw_batch, train_step

Report = Callable[[dict], None]


class TrainingDiverged(Exception):
    """A loss became NaN or infinite."""


class _Window:
    """Sums of the per-step metrics since the last take(), kept on the device so that
    reading them (a sync) happens only when a report or a history row is due."""

    def __init__(self, device: torch.device):
        self.sums = torch.zeros(len(METRICS), dtype=torch.float64, device=device)
        self.steps = 0

    def add(self, values: torch.Tensor) -> None:
        self.sums += values
        self.steps += 1

    def take(self) -> list[float] | None:
        if not self.steps:
            return None
        means = (self.sums / self.steps).tolist()
        self.sums.zero_()
        self.steps = 0
        return means

    def state(self) -> dict:
        return {"sums": self.sums.cpu(), "steps": self.steps}

    def load(self, state: dict) -> None:
        self.sums.copy_(state["sums"])
        self.steps = int(state["steps"])


def train_split(job: TrainJob, report: Report | None = None, device: torch.device | None = None,
                device_label: str | None = None) -> TrainResult:  # fmt: skip
    """Train (or resume) one split's AC-GAN for job.steps steps and checkpoint it.

    `report` receives a `started` event, then `progress` events (at most every
    job.report_every_seconds, and at each checkpoint). `device_label` is how the device is
    shown in those events and the result (default: describe_device(device)).
    """
    device = device or pick_device(prefer_cuda=True)
    attempt = _Attempt(job, report or (lambda event: None), device, device_label or describe_device(device))
    attempt.resume()
    return attempt.train()


class _Attempt:
    """One attempt at a split's training: what the loop carries from step to step."""

    def __init__(self, job: TrainJob, report: Report, device: torch.device, device_label: str):
        self.started = time.monotonic()
        self.job, self.report, self.device, self.device_label = job, report, device, device_label
        self.split_dir = location(job.split_dir)
        self.config = GANConfig.from_dict({**job.gan, "num_classes": len(job.classes)})
        torch.manual_seed(job.seed)  # init, dropout, noise and augmentation; saved and restored below
        self.gan = GAN.build(self.config, device)
        self.rng = torch.Generator().manual_seed(job.seed)  # batches, noise and fake labels
        self.step, self.past_seconds = 0, 0.0
        self.history: list[list[float]] = []  # ROW_WIDTH values per row (manifests/tables/history.py)
        self.report_window, self.history_window = _Window(device), _Window(device)
        self.last = {"loss_d": None, "loss_g": None, "class_accuracy": None}
        self.generator_path = str(self.split_dir / GENERATOR_WEIGHTS)  # rewritten at the last step at the latest

    def resume(self) -> None:
        """Continue from the split's checkpoint (if any), say so, then load the split's data."""
        # This attempt, and no older one of the split that may still run somewhere (a Ray retry
        # while a partitioned node goes on), moves the split's checkpoints from now on.
        training_states(self.split_dir).claim()
        state, warning, new_seed = _state_to_resume(self.split_dir, self.config, self.job.seed)
        if state is not None:
            self.step, self.past_seconds, self.history = _restore(state, self.gan, self.rng, self.history_window,
                                                                  self.device)  # fmt: skip
        self.resumed_from = self.step
        # Reported before the data loads, so that an attempt that fails there still counts.
        self.report({"event": "started", "step": self.step, "resumed_from": self.step, "device": self.device_label,
                     "pid": os.getpid(), "warning": warning, "new_seed": new_seed})  # fmt: skip
        data = load_split_images(self.job.data, self.job.classes, self.config.image_size, cache_dir=self.split_dir,
                                 index=self.job.data_index)  # fmt: skip
        self.skipped_images = data.skipped
        self.images = data.images.to(self.device)  # uint8 stays compact; each batch is scaled on the fly
        self.labels = data.labels.to(self.device)
        # A split of grey images is shown grey (a function of the data: a resume sets it alike).
        self.gan.generator.grey = self.gan.sampler().grey = all_grey(data.images)
        self.by_class = ClassIndex.of(data.labels) if self.config.class_balanced else None
        self.guard = QualityGuard(self.job, self.config, data.images, data.labels, self.device) \
            if self.job.guard else None  # fmt: skip
        # Not kept: on a GPU the host copy is freed here (a 128 px split of ImageNet's 13k images
        # is 640 MB), so splits sharing a node hold only their GPU copies.
        del data
        self.logged_until = self.step  # TensorBoard has every history row up to here (workers/tensorboard.py)
        tensorboard.drop_segments_after(self.split_dir, self.step)

    def elapsed(self) -> float:
        return self.past_seconds + time.monotonic() - self.started

    def train(self) -> TrainResult:
        job, last_report = self.job, time.monotonic()
        self.gan.generator.train()
        self.gan.discriminator.train()
        while self.step < job.steps:
            batch = draw_batch(self.images, self.labels, job.batch_size, self.config.z_dim, self.config.num_classes,
                               self.rng, paired=self.config.g_mode_seeking > 0, balanced=self.by_class)  # fmt: skip
            measured = train_step(self.gan, batch)
            self.step += 1
            self.report_window.add(measured)
            self.history_window.add(measured)
            due_checkpoint = self.step % job.checkpoint_every == 0 or self.step == job.steps
            guarded = self._guard(due_checkpoint)
            if self.step % job.history_interval == 0 or self.step == job.steps or guarded:
                self.history.append([self.step, *self.history_window.take(), self.elapsed(),
                                     *(guarded or [math.nan] * len(GUARD_METRICS))])  # fmt: skip
            now = time.monotonic()
            if now - last_report >= job.report_every_seconds or due_checkpoint:
                self._report_progress(due_checkpoint)
                last_report = now
        return self._result()

    def _guard(self, due_checkpoint: bool) -> list[float] | None:
        """At a checkpoint, with the guard on: score the generator, keep it if it is the best,
        and return the history's guard figures (None otherwise). Before the checkpoint: a kill
        between the two redoes this check from the checkpoint before with the same result, so
        the best file stays exact."""
        if self.guard is None or not due_checkpoint:
            return None
        scores = self.guard.check(self.gan.sampler())
        self.guard.keep_if_best(self.gan.sampler(), scores, self.step)
        return [sum(s.accuracy for s in scores) / len(scores), min(s.diversity for s in scores), quality_score(scores)]

    def _report_progress(self, due_checkpoint: bool) -> None:
        """A progress event (checkpointing first when one is due); a non-finite loss stops training."""
        means = self.report_window.take()
        if means is not None:
            self.last = {"loss_d": means[0], "loss_g": means[1], "class_accuracy": means[2]}
        if not (math.isfinite(self.last["loss_d"]) and math.isfinite(self.last["loss_g"])):
            raise TrainingDiverged(
                f"split {self.job.split}: non-finite loss at step {self.step} "
                f"(loss_d={self.last['loss_d']}, loss_g={self.last['loss_g']})"
            )
        event = {"event": "progress", "step": self.step, "train_seconds": self.elapsed(),
                 "skipped_images": self.skipped_images, **self.last}  # fmt: skip
        if due_checkpoint:
            self.generator_path = self._checkpoint()
            event.update(checkpoint=self.generator_path, checkpoint_step=self.step)
            if self.guard is not None:
                event.update(quality=self.guard.best_score, best_checkpoint=self.guard.best_path,
                             best_step=self.guard.best_step)  # fmt: skip
        self.report(event)

    def _checkpoint(self) -> str:
        """Write the curves, the training state, the history and the generator; return the
        generator's path."""
        job, split_dir, seconds = self.job, self.split_dir, self.elapsed()
        snapshot = _snapshot(self.gan, self.rng, self.history_window, self.device, step=self.step, seed=job.seed,
                             train_seconds=seconds, history=self.history)  # fmt: skip
        # The curves' file before the state: a kill between the two resumes from the checkpoint
        # before, which removes this file and writes it again.
        grid = tensorboard.sample_grid(self.gan.sampler(), self.config.num_classes, self.config.z_dim)
        tensorboard.write_segment(split_dir, job.split, self.history, self.logged_until, self.step, grid, seconds)
        self.logged_until = self.step
        save_training_state(split_dir, snapshot)
        write_history(split_dir, job.split, self.history)
        info = GeneratorInfo(config=self.config, step=self.step, split=job.split,
                             classes=list(job.classes), class_names=list(job.class_names))  # fmt: skip
        return str(save_generator(split_dir, self.gan.sampler(), info))

    def _result(self) -> TrainResult:
        guard = self.guard
        return TrainResult(
            split=self.job.split,
            step=self.step,
            generator_path=self.generator_path,
            train_seconds=self.elapsed(),
            device=self.device_label,
            resumed_from_step=self.resumed_from,
            skipped_images=self.skipped_images,
            **self.last,
            **({} if guard is None else {"quality": guard.best_score, "best_path": guard.best_path,
                                         "best_step": guard.best_step, "flags": guard.flags()}),  # fmt: skip
        )


def all_grey(images: torch.Tensor, chunk: int = 256) -> bool:
    """Whether every image of a (N, 3, H, W) batch is grey: its three channels equal. In chunks,
    stopping at the first colour one: a 128 px ImageNet split would need 0.4 GB compared at once."""
    if images.shape[1] != 3:
        return False
    return all(bool((part[:, :1] == part[:, 1:]).all()) for part in images.split(chunk))


def _state_to_resume(split_dir: Location, config: GANConfig, seed: int) -> tuple[dict | None, str | None, bool]:
    """The training state this attempt continues from (None: start at step 0), the warning
    to report when an unusable newest file was skipped, and whether this is a new seed."""
    loaded = load_training_state(split_dir)
    if loaded is None:
        _check_nothing_lost(split_dir)
        return None, None, False
    state = loaded.state
    if not loaded.newest:
        # Kept for inspection, and out of the way: the next save must not rotate it over
        # the good previous one.
        training_states(split_dir).discard_newest(keep_as=split_dir / BAD_STATE_NAME)
    if int(state.get("seed", seed)) != seed:
        # A quality retry: this seed starts from scratch, perhaps with another recipe
        # (ensemble/launching/recipes.py). The rejected seed's training state goes; its history
        # stays for inspection, and its best generator stays the split's best until this seed beats it.
        _set_aside(split_dir, int(state["seed"]))
        return None, None, True
    if GANConfig.from_dict(state["config"]) != config:
        raise CheckpointError(f"{split_dir} holds a checkpoint of another model config; use a new --run")
    return state, loaded.warning, False


def _snapshot(gan: GAN, rng: torch.Generator, history_window: _Window, device: torch.device, *, step: int,
              seed: int, train_seconds: float, history: list[list[float]]) -> dict:  # fmt: skip
    """Everything a resume needs to continue bit for bit; _restore reads back the same keys."""
    snapshot = {
        "config": gan.config.to_dict(),
        "step": step,
        "seed": seed,
        "train_seconds": train_seconds,
        "generator": gan.generator.state_dict(),
        "discriminator": gan.discriminator.state_dict(),
        "opt_g": gan.opt_g.state_dict(),
        "opt_d": gan.opt_d.state_dict(),
        "rng": rng.get_state(),
        "torch_rng": torch.get_rng_state(),
        "history": torch.tensor(history, dtype=torch.float64).reshape(-1, ROW_WIDTH),
        "history_window": history_window.state(),
    }
    if device.type == "cuda":
        snapshot["cuda_rng"] = torch.cuda.get_rng_state(device)
    if gan.averaged is not None:
        snapshot["generator_ema"] = gan.averaged.model.state_dict()
    return snapshot


def _restore(state: dict, gan: GAN, rng: torch.Generator, history_window: _Window,
             device: torch.device) -> tuple[int, float, list[list[float]]]:  # fmt: skip
    """Load a _snapshot into the models, optimisers and random streams; return its step,
    training seconds and history rows."""
    gan.generator.load_state_dict(state["generator"])
    gan.discriminator.load_state_dict(state["discriminator"])
    gan.opt_g.load_state_dict(state["opt_g"])
    gan.opt_d.load_state_dict(state["opt_d"])
    if gan.averaged is not None:
        gan.averaged.model.load_state_dict(state["generator_ema"])
    rng.set_state(state["rng"])
    torch.set_rng_state(state["torch_rng"])
    if device.type == "cuda" and "cuda_rng" in state:
        torch.cuda.set_rng_state(state["cuda_rng"], device)
    history = []
    if "history" in state:  # checkpoints from before the history have none
        history = padded_rows(state["history"].tolist())
        history_window.load(state["history_window"])
    return int(state["step"]), float(state["train_seconds"]), history


def _check_nothing_lost(split_dir: Location) -> None:
    """A split whose seed has a history (written after each checkpoint's training state) but
    no training state has lost its checkpoints (both state files deleted, or a disk restored
    without them): it fails, naming them, instead of training again from step 0 over the
    curves of the steps it had."""
    if (split_dir / HISTORY_NAME).exists():
        raise CheckpointError(
            f"{split_dir} holds the history of checkpointed training ({HISTORY_NAME}) but no training state "
            f"({STATE_NAME} and {PREVIOUS_STATE_NAME} are missing): its checkpoints were lost; restore them, or "
            f"delete {split_dir} to retrain this split"
        )


def _set_aside(split_dir: Location, old_seed: int) -> None:
    # The history first: a kill between the two leaves the old seed's state, which the next
    # attempt sets aside again, never a history without a state (_check_nothing_lost).
    history = split_dir / HISTORY_NAME
    if history.exists():
        history.move(split_dir / f"history.seed-{old_seed}.parquet")
    training_states(split_dir).remove_all()
