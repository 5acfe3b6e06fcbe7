"""A missing or unreadable training state is never a silent restart (issue 21): a pointer that
names keys which are gone fails the split naming them, a missing newest falls back to the
previous without touching it, and I/O errors are retried before a file is judged corrupt.
On a real S3 server (moto's, on 127.0.0.1) and on local disk."""
from __future__ import annotations

import pytest
import torch

from manifests.run_dir import training_states
from manifests.storage import LocalLocation, StorageError, location
from workers.checkpoints import BAD_STATE_NAME, CheckpointError, load_training_state, save_training_state


def state(step: int) -> dict:
    return {"step": step, "generator": {"w": torch.full((2,), float(step))}}


def test_a_pointer_naming_keys_that_are_gone_fails_naming_them_instead_of_restarting(s3_prefix):
    split = location(s3_prefix) / "splits" / "003"
    save_training_state(split, state(100))
    save_training_state(split, state(200))
    named = training_states(split).named()
    for version in named:
        version.unlink()  # lost behind the pointer's back (a second writer, a lifecycle rule)
    with pytest.raises(CheckpointError) as error:
        load_training_state(split)
    message = str(error.value)
    assert all(f"{version} is missing" in message for version in named) and "no usable checkpoint" in message


def test_a_missing_newest_falls_back_to_the_previous_and_setting_it_aside_keeps_the_previous(s3_prefix):
    split = location(s3_prefix) / "splits" / "004"
    save_training_state(split, state(100))
    save_training_state(split, state(200))
    newest, previous = training_states(split).named()
    newest.unlink()
    loaded = load_training_state(split)
    assert loaded.state["step"] == 100 and not loaded.newest and "is missing" in loaded.warning
    training_states(split).discard_newest(keep_as=split / BAD_STATE_NAME)  # what resume does next
    assert training_states(split).named() == [previous] and previous.exists()
    assert load_training_state(split).state["step"] == 100


class Flaky(LocalLocation):
    """A local file whose first `failures` reads fail as a dropped NFS or S3 connection does."""

    failures = 0

    def reading(self):
        if Flaky.failures:
            Flaky.failures -= 1
            raise OSError("connection reset by peer")
        return super().reading()


def test_io_errors_are_retried_and_never_set_a_good_file_aside(tmp_path, monkeypatch):
    monkeypatch.setattr("workers.checkpoints.time.sleep", lambda seconds: None)
    save_training_state(tmp_path, state(100))
    save_training_state(tmp_path, state(200))
    flaky = Flaky(tmp_path / "state.pt")
    monkeypatch.setattr(type(training_states(tmp_path)), "named", lambda self: [flaky])
    Flaky.failures = 3  # within the retries: read as usual
    assert load_training_state(tmp_path).state["step"] == 200
    Flaky.failures = 10  # the storage stays down: the attempt fails, the file is not judged
    with pytest.raises(StorageError, match="cannot read .*state.pt after 4 tries: connection reset by peer; check"):
        load_training_state(tmp_path)
    assert (tmp_path / "state.pt").is_file() and not (tmp_path / BAD_STATE_NAME).exists()


def test_a_truncated_newest_is_still_set_aside_for_the_previous(tmp_path):
    save_training_state(tmp_path, state(100))
    save_training_state(tmp_path, state(200))
    (tmp_path / "state.pt").write_bytes((tmp_path / "state.pt").read_bytes()[:100])
    loaded = load_training_state(tmp_path)
    assert loaded.state["step"] == 100 and "unreadable" in loaded.warning
