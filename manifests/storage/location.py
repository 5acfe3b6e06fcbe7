"""What every storage offers a run: a Location (a file or folder, local or on object storage)
with the few operations a run needs, and the entries of a folder listing."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from manifests.errors import UserError

Fill = Callable[[str], None]
"""Writes a file's content to the local path it is given."""
Change = Callable[["bytes | None"], bytes]
"""A file's new bytes, from its current ones (None: there is no file yet)."""


class StorageError(UserError):
    """A location that cannot be used: a bad URI, no credentials, no bucket, no access."""


class WriteConflict(Exception):
    """A conditional write refused: another writer changed the object since this one read or
    wrote it (S3Location.write_if)."""


@dataclass(frozen=True)
class Entry:
    """One item of a folder listing: sizes and times let callers fingerprint without a stat each."""

    location: "Location"
    is_dir: bool
    size: int | None = None
    mtime_ns: int | None = None

    @property
    def name(self) -> str:
        return self.location.name


class Location:
    """A file or folder on local disk or object storage. str() gives the path or URI."""

    is_local: bool

    def __truediv__(self, name: str) -> "Location":
        raise NotImplementedError

    def versioned(self, name: str, previous_name: str, pointer_name: str):
        """The VersionedFile `name` in this folder, kept the way this storage can
        (manifests/storage/versioned.py)."""
        raise NotImplementedError

    @property
    def name(self) -> str:
        return str(self).rstrip("/").rsplit("/", 1)[-1]

    def __eq__(self, other) -> bool:
        return isinstance(other, Location) and str(self) == str(other)

    def __hash__(self) -> int:
        return hash(str(self))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({str(self)!r})"

    def read_text(self) -> str:
        return self.read_bytes().decode()

    def update(self, change: Change) -> None:
        """Replace the file with change(its bytes), read and written as one step against other
        processes updating it where the storage allows: on local disk under a flock, on S3
        with a write conditional on the version read. Here (a store without conditional
        writes) the last writer wins."""
        self.write_bytes(change(self.read_bytes() if self.is_file() else None))

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def path_to(self, file: str) -> str:
        """The path of `file` (as str() of a Location under this folder gives it) relative to
        this folder; a string operation, so no store is opened for it."""
        base = str(self).rstrip("/") + "/"
        if not file.startswith(base):
            raise ValueError(f"{file} is not under {self}")
        return file[len(base) :]
