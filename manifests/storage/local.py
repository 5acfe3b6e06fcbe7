"""A Location on local disk (or a folder every node mounts: NFS, Lustre). Writes go to a
temporary file, fsynced and renamed over the old one (atomic_files.py)."""
from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from pathlib import Path
from typing import Iterator

from manifests.storage.atomic_files import atomic_write, atomic_write_bytes
from manifests.storage.location import Change, Entry, Fill, Location
from manifests.storage.versioned import LocalVersionedFile


class LocalLocation(Location):
    is_local = True

    def __init__(self, path: Path):
        self.path = Path(path)

    def __str__(self) -> str:
        return str(self.path)

    def __fspath__(self) -> str:  # usable wherever a path is: open(), os.*, pyarrow, torch
        return str(self.path)

    def __truediv__(self, name: str) -> "LocalLocation":
        return LocalLocation(self.path / name)

    def versioned(self, name: str, previous_name: str, pointer_name: str) -> LocalVersionedFile:
        return LocalVersionedFile(self, name, previous_name, pointer_name)

    @property
    def parent(self) -> "LocalLocation":
        return LocalLocation(self.path.parent)

    def absolute(self) -> "LocalLocation":
        return LocalLocation(self.path.resolve())

    def path_to(self, file: str) -> str:
        # Both resolved: workers are given the run's resolved path (absolute()), and a run
        # under a symlink to a folder at another depth would otherwise be stored as
        # "../../elsewhere/splits/...", which reads back from the unresolved root as missing.
        return os.path.relpath(os.path.realpath(file), os.path.realpath(self.path))

    def exists(self) -> bool:
        return self.path.exists()

    def is_file(self) -> bool:
        return self.path.is_file()

    def is_dir(self) -> bool:
        return self.path.is_dir()

    def read_bytes(self) -> bytes:
        return self.path.read_bytes()

    def write_bytes(self, data: bytes) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.path, data)

    def write_with(self, fill: Fill) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(self.path, fill)

    def update(self, change: Change) -> None:
        """Under a flock on `.NAME.lock` beside the file (held by one process of the machine, or
        of an NFS mount with locking, at a time)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path.parent / f".{self.path.name}.lock", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self.write_bytes(change(self.path.read_bytes() if self.path.is_file() else None))
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def reading(self) -> Iterator[str]:
        yield str(self.path)

    def list(self) -> list[Entry]:
        """Without sizes and times: a stat per file is costly on NFS; fingerprints stat what they need."""
        return [Entry(LocalLocation(Path(e.path)), e.is_dir()) for e in os.scandir(self.path)]

    def unlink(self) -> None:
        self.path.unlink(missing_ok=True)

    def move(self, target: "LocalLocation") -> None:
        os.replace(self.path, target.path)

    def mkdir(self) -> None:
        self.path.mkdir(parents=True, exist_ok=True)


def probe_write(folder: Path) -> None:
    """Create and remove a file in `folder`, raising the OSError a write there would: a probe,
    since root passes every os.access check. Nothing stays behind."""
    tempfile.TemporaryFile(dir=folder).close()
