"""The one way every file of a run is written: whole and durable, or not at all.

The data goes to a temporary name in the same folder, is flushed to the disk (fsync), and
only then moved into place with os.replace, which is atomic on POSIX; the folder is synced
after the move so that the new name survives a power loss too. A reader at any instant sees
a whole old file or a whole new one, and a crash never leaves an empty or torn file under
the real name (a rename without the fsync can: the rename may reach the disk before the data).
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Callable


def atomic_write(path: Path, write: Callable[[str], None], keep_previous: Path | None = None) -> None:
    """Call `write(tmp)` to fill a temporary file, make it durable, then move it to `path`.
    `keep_previous`: move the file `path` replaces there first (a kill between the two moves
    leaves the previous file alone, which a reader can fall back to)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        # mkstemp makes 0600 (and some writers recreate the file): give the mode a new file
        # gets under the user's umask, so that a private umask keeps private data private.
        os.chmod(tmp, 0o666 & ~current_umask())
        _fsync_path(tmp, os.O_RDONLY)
        if keep_previous is not None and path.exists():
            os.replace(path, keep_previous)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_path(path.parent, os.O_RDONLY | os.O_DIRECTORY)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` so that readers never see a partial file."""

    def write(tmp: str) -> None:
        with open(tmp, "wb") as f:
            f.write(data)

    atomic_write(path, write)


def current_umask() -> int:
    """The process's umask, read without changing it (os.umask sets it too, which would race
    with other threads creating files); 0o022 when the kernel does not say."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _fsync_path(path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
