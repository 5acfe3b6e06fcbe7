"""Every file of a run is written by one durable atomic writer: data flushed to the disk
before the rename, the folder synced after it."""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from manifests.storage import atomic_files


@pytest.fixture
def disk_events(monkeypatch) -> list[tuple[str, str]]:
    """(fsync | replace, path) in the order they happen, for every file under test."""
    events: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", f"{src} -> {dst}"))
        real_replace(src, dst)

    monkeypatch.setattr(atomic_files.os, "fsync", fsync)
    monkeypatch.setattr(atomic_files.os, "replace", replace)
    return events


def assert_durable(events, path: Path) -> None:
    """The temporary file is synced, then renamed to `path`, then the folder is synced."""
    moves = [i for i, (kind, what) in enumerate(events) if kind == "replace" and what.endswith(f" -> {path}")]
    assert moves, f"{path} was not written through the atomic writer: {events}"
    move = moves[-1]
    tmp = events[move][1].split(" -> ")[0]
    synced = [i for i, (kind, what) in enumerate(events) if kind == "fsync" and what == tmp]
    assert synced and synced[-1] < move, f"{tmp} renamed to {path} before it was synced: {events}"
    assert ("fsync", str(path.parent)) in events[move + 1 :], f"{path.parent} not synced after the rename: {events}"


def test_bytes_are_whole_and_durable(tmp_path, disk_events):
    atomic_files.atomic_write_bytes(tmp_path / "run.json", b"{}")
    assert (tmp_path / "run.json").read_bytes() == b"{}"
    assert_durable(disk_events, tmp_path / "run.json")
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary file left


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    (tmp_path / "state.pt").write_bytes(b"old")

    def fails(tmp):
        Path(tmp).write_bytes(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_files.atomic_write(tmp_path / "state.pt", fails)
    assert [p.name for p in tmp_path.iterdir()] == ["state.pt"] and (tmp_path / "state.pt").read_bytes() == b"old"


def test_training_state_generator_cache_and_manifest_all_go_through_it(tmp_path, disk_events):
    from manifests.run_dir import RunDir
    from tests.helpers import planned_run
    from manifests.run_dir import PREVIOUS_STATE_NAME, STATE_NAME
    from workers.checkpoints import GeneratorInfo, save_generator, save_training_state
    from workers.config import GANConfig
    from workers.datasets.cache import write_cache
    from workers.datasets.loaded import LoadedImages
    from workers.model import Generator
    from workers.state_format import load_state

    split_dir = tmp_path / "split"
    save_training_state(split_dir, {"step": 1, "generator": {}})
    save_training_state(split_dir, {"step": 2, "generator": {}})
    assert_durable(disk_events, split_dir / STATE_NAME)
    assert load_state(str(split_dir / PREVIOUS_STATE_NAME))["step"] == 1  # kept, not lost

    config = GANConfig(num_classes=2, g_widths=(8, 8, 8))
    info = GeneratorInfo(config=config, step=2, split=0, classes=[0, 1], class_names=["a", "b"])
    weights = save_generator(split_dir, Generator(config), info)
    assert_durable(disk_events, weights)
    assert_durable(disk_events, weights.path.with_suffix(".json"))

    cache = split_dir / "images-32.safetensors"
    write_cache(cache, "key", LoadedImages(images=torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
                                           labels=torch.zeros(2, dtype=torch.long), skipped=0))  # fmt: skip
    assert_durable(disk_events, cache)

    run = planned_run(tmp_path / "run")
    assert_durable(disk_events, run.manifest_path)
    assert_durable(disk_events, RunDir(tmp_path / "run").spec_path)


@pytest.mark.parametrize("umask,mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_written_file_gets_the_mode_the_umask_gives(tmp_path, umask, mode):
    old = os.umask(umask)
    try:
        atomic_files.atomic_write_bytes(tmp_path / "cache.bin", b"private pixels")
    finally:
        os.umask(old)
    assert (tmp_path / "cache.bin").stat().st_mode & 0o777 == mode
