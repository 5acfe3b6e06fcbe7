"""The run's launch lock: at most one coordinator per run, and a way to tell whether one lives.

    RUN/launch.lock     held with flock(LOCK_EX) by the running `ensemble launch`; holds
                        its pid, host and start time as JSON

The kernel drops a flock when its holder exits in any way, SIGKILL included, so "the lock
can be taken" means "no launch is alive" with no stale-lock clean-up. Readers such as
`ensemble status` probe it with a shared lock held for microseconds and never create it.
flock works across hosts on NFSv4 and most cluster file systems (it is emulated with
POSIX locks there); on a file system without locking, probes report no launch.

A run on object storage has no flock: on S3 a lease object with conditional writes plays its
part (manifests/locks/lease.py); other stores offer none that pyarrow can use, and a launch there
says so and goes on unguarded. lock_for() and launch_holder() pick the right one.
"""
from __future__ import annotations

import datetime as dt
import errno
import fcntl
import json
import os
import socket
import sys
import threading
import time
from pathlib import Path

from manifests.locks.holder import LaunchHolder, LaunchLockedError, refusal
from manifests.locks.lease import S3Lease, holder_of, read_lease
from manifests.run_dir import RunDirError
from manifests.storage import LocalLocation, Location, S3Location, location

LOCK_NAME = "launch.lock"
# A status probe holds a shared lock for microseconds; a launch retries for this long
# before concluding that another launch holds the lock.
ACQUIRE_PATIENCE_S = 2.0


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
        self.lost = threading.Event()  # never set: the kernel holds a flock until its holder exits

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # Not through a symlink: one planted as RUN/launch.lock would have the launch
            # truncate and overwrite whatever file it points to.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise RunDirError(f"{self.path} is a symbolic link; a run's lock must be a plain file: remove the "
                              f"link and launch again") from None  # fmt: skip
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

    def valid(self) -> bool:
        """Held: the kernel keeps a flock until its holder exits, so nothing can take it over."""
        return self._fd is not None

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock; the file stays for the next launch
            self._fd = None

    def __enter__(self) -> "LaunchLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Unguarded:
    """A store without conditional writes: launches are not kept apart, and the user is told."""

    def __init__(self, run_root: Location):
        self.run_root = run_root
        self.lost = threading.Event()

    def acquire(self) -> None:
        scheme = str(self.run_root).split("://", 1)[0]
        print(f"warning: {scheme}:// offers no conditional write this tool can use, so a second launch on "
              f"{self.run_root} would not be refused; run one launch at a time", file=sys.stderr)  # fmt: skip

    def valid(self) -> bool:
        return True  # nothing to lose

    def release(self) -> None:
        pass


def _lease_holder(root: S3Location) -> LaunchHolder | None:
    lease = read_lease(root)
    return None if lease is None else holder_of(lease)


_GUARDS = {LocalLocation: lambda root: LaunchLock(root.path), S3Location: S3Lease}
"""Each kind of storage's launch guard; a kind not here gets Unguarded (said so)."""
_HOLDERS = {LocalLocation: lambda root: _flock_holder(root.path), S3Location: _lease_holder}


def lock_for(run_root: "Location | str | os.PathLike"):
    """The run's launch guard: a flock locally, a lease on S3, none elsewhere (said so)."""
    root = location(run_root)
    return _GUARDS.get(type(root), Unguarded)(root)


def launch_holder(run_root: "Location | str | os.PathLike") -> LaunchHolder | None:
    """Who holds the run's launch lock or lease now (a lease possibly expired), or None."""
    root = location(run_root)
    holder = _HOLDERS.get(type(root))
    return holder(root) if holder else None


def launch_state(run_root: "Location | str | os.PathLike") -> tuple[LaunchHolder | None, LaunchHolder | None]:
    """(the launch alive on the run now, the expired lease a killed launch left): either may be None."""
    holder = launch_holder(run_root)
    if holder is None:
        return None, None
    return (holder, None) if holder.live else (None, holder)


def live_launch(run_root: "Location | str | os.PathLike") -> LaunchHolder | None:
    """Who holds the run's launch lock now, or None when no launch is alive."""
    return launch_state(run_root)[0]


def _flock_holder(run_root: Path) -> LaunchHolder | None:
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
