"""The run's launch lock: a launch waits out a status probe, and gives up on a live holder."""
from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import threading
import time

import pytest

from manifests.locks import launch_lock
from manifests.locks.launch_lock import LaunchLock, live_launch
from manifests.locks.holder import LaunchLockedError
from manifests.run_dir import RunDirError

HOLD = """
import sys, time
from manifests.locks.launch_lock import LaunchLock
with LaunchLock(sys.argv[1]):
    print("held", flush=True)
    sys.stdin.readline()  # until the test says so
"""


def test_a_live_holder_is_named_and_a_second_acquire_gives_up_after_its_patience(tmp_path, monkeypatch):
    monkeypatch.setattr(launch_lock, "ACQUIRE_PATIENCE_S", 0.5)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "held"
        assert live_launch(tmp_path).pid == holder.pid
        start = time.monotonic()
        with pytest.raises(LaunchLockedError, match=rf"another `ensemble launch` \(pid {holder.pid} on .*wait for it"):
            LaunchLock(tmp_path).acquire()
        assert 0.5 <= time.monotonic() - start < 5
    finally:
        holder.communicate("\n", timeout=30)
    assert live_launch(tmp_path) is None  # its exit dropped the lock
    with LaunchLock(tmp_path):
        assert live_launch(tmp_path).pid == os.getpid()


def test_a_launch_waits_out_a_status_probe_rather_than_refusing(tmp_path):
    """`ensemble status` takes a shared lock for an instant; a launch acquiring meanwhile waits."""
    with LaunchLock(tmp_path):  # creates the file
        pass
    probe_fd = os.open(tmp_path / launch_lock.LOCK_NAME, os.O_RDONLY)
    fcntl.flock(probe_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    released = threading.Timer(0.3, os.close, [probe_fd])  # a slow probe: 0.3 s
    released.start()
    lock = LaunchLock(tmp_path)
    start = time.monotonic()
    lock.acquire()
    try:
        assert time.monotonic() - start >= 0.25 and live_launch(tmp_path).pid == os.getpid()
    finally:
        lock.release()
        released.join()


def test_a_lock_file_planted_as_a_symlink_is_refused_and_its_target_left_alone(tmp_path):
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me\n")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "launch.lock").symlink_to(victim)
    with pytest.raises(RunDirError, match="launch.lock is a symbolic link"):
        LaunchLock(tmp_path / "run").acquire()
    assert victim.read_text() == "keep me\n"
