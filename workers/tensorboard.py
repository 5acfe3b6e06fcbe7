"""A split's curves for TensorBoard: splits/NNN/tensorboard/, one event file per checkpoint.

Each checkpoint writes one whole file holding the history rows since the checkpoint before it
and a grid of samples (one row per class, the same noise every time), named by its step so
that TensorBoard reads the files in training order. A file is written whole, through the
run's storage layer, like the history it mirrors: a kill between checkpoints leaves no half
file, a resume starts the next file after the checkpoint it resumed from (so no step is
logged twice), and a run on object storage gets its files there too.

`tensorboard --logdir RUN` shows every split as a run named splits/NNN/tensorboard.
"""
from __future__ import annotations

import struct
import time

import torch

from manifests.tables.history import GUARD_METRICS, METRICS
from manifests.storage import Location

TENSORBOARD_DIR = "tensorboard"
GRID_SAMPLES_PER_CLASS = 4
TAGS = {
    "loss_d": "loss/discriminator",
    "loss_g": "loss/generator",
    "class_accuracy": "class_accuracy/real",
    "class_accuracy_fake": "class_accuracy/fake",
    "d_real": "discriminator_score/real",
    "d_fake": "discriminator_score/fake",
    "sample_accuracy": "quality/sample_accuracy",
    "sample_diversity": "quality/least_diversity",
    "quality": "quality/score",
}
"""History column -> TensorBoard tag; a tag's prefix groups the charts."""


def segment_name(split: int, step: int) -> str:
    # "tfevents" marks an event file for TensorBoard; the zero-padded step orders them.
    return f"events.out.tfevents.{step:012d}.split-{split:03d}"


def segment_step(name: str) -> int | None:
    parts = name.split(".")
    return int(parts[3]) if len(parts) == 5 and parts[2] == "tfevents" and parts[3].isdigit() else None


def drop_segments_after(split_dir: Location, step: int) -> None:
    """Remove the files of checkpoints past `step`: those of a state that a resume set aside."""
    folder = split_dir / TENSORBOARD_DIR
    if not folder.is_dir():
        return
    for entry in folder.list():
        logged = segment_step(entry.name)
        if logged is not None and logged > step:
            entry.location.unlink()


def write_segment(split_dir: Location, split: int, rows: list[list[float]], after_step: int, step: int,
                  grid: torch.Tensor | None, seconds_now: float) -> Location:  # fmt: skip
    """The rows with after_step < row step <= step, and `grid` ((3, H, W) uint8) at `step`.
    `seconds_now`: the split's training seconds now, to date each row from its own."""
    from tensorboardX.proto.event_pb2 import Event

    now = time.time()
    records = [Event(wall_time=now, step=0, file_version="brain.Event:2")]
    names = ("step", *METRICS, "train_seconds", *GUARD_METRICS)
    for row in rows:
        values = dict(zip(names, row))
        row_step = int(values["step"])
        if not after_step < row_step <= step:
            continue
        wall = now - max(0.0, seconds_now - values["train_seconds"])
        summaries = [_scalar(TAGS[name], values[name]) for name in (*METRICS, *GUARD_METRICS) if values[name] == values[name]]
        records.append(Event(wall_time=wall, step=row_step, summary=_merged(summaries)))
    if grid is not None:
        records.append(Event(wall_time=now, step=step, summary=_image("samples (a row per class)", grid)))
    target = split_dir / TENSORBOARD_DIR / segment_name(split, step)
    target.write_bytes(b"".join(_framed(event.SerializeToString()) for event in records))
    return target


@torch.no_grad()
def sample_grid(sampler: torch.nn.Module, num_classes: int, z_dim: int) -> torch.Tensor:
    """(3, H, W) uint8: GRID_SAMPLES_PER_CLASS images per class, a row each, the same noise at every
    checkpoint so that the grids show what training changed."""
    from workers.images import render, tile

    noise = torch.randn(GRID_SAMPLES_PER_CLASS, z_dim, generator=torch.Generator().manual_seed(0)).repeat(num_classes, 1)
    labels = torch.arange(num_classes).repeat_interleave(GRID_SAMPLES_PER_CLASS)
    was_training = sampler.training
    sampler.eval()
    try:
        images = render(sampler, noise, labels)
    finally:
        sampler.train(was_training)
    return tile(images, columns=GRID_SAMPLES_PER_CLASS)


def _scalar(tag: str, value: float):
    from tensorboardX.proto.summary_pb2 import Summary

    return Summary.Value(tag=tag, simple_value=float(value))


def _merged(values: list):
    from tensorboardX.proto.summary_pb2 import Summary

    return Summary(value=values)


def _image(tag: str, grid: torch.Tensor):
    from tensorboardX.proto.summary_pb2 import Summary

    from workers.images import encode

    channels, height, width = grid.shape
    image = Summary.Image(height=height, width=width, colorspace=channels, encoded_image_string=encode(grid))
    return Summary(value=[Summary.Value(tag=tag, image=image)])


def _framed(data: bytes) -> bytes:
    """One TFRecord: length, its masked CRC-32C, the data, the data's masked CRC-32C."""
    from tensorboardX.record_writer import masked_crc32c

    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))
