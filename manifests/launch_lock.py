"""The run's launch lock: at most one coordinator per run, and a way to tell whether one lives.

    RUN/launch.lock     held with flock(LOCK_EX) by the running `ensemble launch`; holds
                        its pid, host and start time as JSON

The kernel drops a flock when its holder exits in any way, SIGKILL included, so "the lock
can be taken" means "no launch is alive" with no stale-lock clean-up. Readers such as
`ensemble status` probe it with a shared lock held for microseconds and never create it.
flock works across hosts on NFSv4 and most cluster file systems (it is emulated with
POSIX locks there); on a file system without locking, probes report no launch.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path

from manifests.run_dir import RunDirError

LOCK_NAME = "launch.lock"
# A status probe holds a shared lock for microseconds; a launch retries for this long
# before concluding that another launch holds the lock.
ACQUIRE_PATIENCE_S = 2.0


class LaunchLockedError(RunDirError):
    """Another launch is running on this run."""


@dataclass(frozen=True)
class LaunchHolder:
    pid: int | None
    host: str | None
    started_at: str | None

    def describe(self) -> str:
        if self.pid is None:
            return "another `ensemble launch`"
        return f"another `ensemble launch` (pid {self.pid} on {self.host}, since {self.started_at})"


def _read_holder(path: Path) -> LaunchHolder:
    try:
        data = json.loads(path.read_text() or "{}")
    except (OSError, ValueError):
        data = {}  # being written this instant, or from a foreign tool: still held
    return LaunchHolder(data.get("pid"), data.get("host"), data.get("started_at"))


class LaunchLock:
    """Held by the coordinator from its first write to the run until it exits."""

    def __init__(self, run_root: Path):
        self.path = Path(run_root) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + ACQUIRE_PATIENCE_S
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise LaunchLockedError(refusal(self.path.parent, _read_holder(self.path))) from None
                time.sleep(0.05)
        holder = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(holder) + "\n").encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays for the next launch
            self._fd = None

    def __enter__(self) -> "LaunchLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def refusal(run_root: Path, holder: LaunchHolder) -> str:
    return f"{holder.describe()} is running {run_root}; wait for it to end or stop it, then launch again"


def live_launch(run_root: Path) -> LaunchHolder | None:
    """Who holds the run's launch lock now, or None when no launch is alive."""
    path = Path(run_root) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None  # never launched by a version with locks, or unreadable: assume none
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return _read_holder(path)
    except OSError:
        return None
    finally:
        os.close(fd)  # also drops the shared lock if it was taken
    return None
