"""Files rewritten at every checkpoint that a kill at any instant must leave readable: the
newest version and the one before it. Each kind of storage keeps them its own way, and
`Location.versioned(...)` gives the kind that fits the folder."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

from manifests.storage.atomic_files import atomic_write
from manifests.storage.location import Fill, Location


class VersionedFile:
    """A large file rewritten at every checkpoint: write a new newest version, read the
    versions a reader may use (newest first), set an unusable newest one aside."""

    def __init__(self, folder: Location, name: str, previous_name: str, pointer_name: str):
        self.folder, self.name, self.previous_name = folder, name, previous_name
        self.pointer = folder / pointer_name

    def write(self, fill: Fill, tag: str) -> Location:
        """Write a new newest version; `tag` goes into its key on object storage (the step)."""
        raise NotImplementedError

    def versions(self) -> list[Location]:
        """The versions a reader may use, newest first (at most two), that exist."""
        return [c for c in self._candidates() if c.exists()]

    def named(self) -> list[Location]:
        """The versions that should exist, newest first: a reader that finds one of them
        missing has lost a checkpoint, not found a split that never had one."""
        return self.versions()

    def _candidates(self) -> list[Location]:
        raise NotImplementedError

    def discard_newest(self, keep_as: Location) -> None:
        """The newest version is unusable: move it to `keep_as` (for inspection), so that the
        next write does not rotate it over the good previous one."""
        newest = self.named()[0]
        if newest.exists():
            newest.move(keep_as)

    def remove_all(self) -> None:
        for version in self.versions():
            version.unlink()


class LocalVersionedFile(VersionedFile):
    """NAME, and NAME.prev beside it; the rename that installs the new file first moves the
    old one aside (manifests/storage/atomic_files.py)."""

    def write(self, fill: Fill, tag: str) -> Location:
        self.folder.mkdir()
        target = self.folder / self.name
        atomic_write(target.path, fill, keep_previous=(self.folder / self.previous_name).path)
        return target

    def _candidates(self) -> list[Location]:
        return [self.folder / self.name, self.folder / self.previous_name]


class PointedVersionedFile(VersionedFile):
    """Object storage, where nothing can be renamed: each version is uploaded under a key of
    its own (NAME-STEP-TOKEN), then a small pointer object (POINTER) is written in one PUT
    naming the newest and the previous key; keys it no longer names are then deleted. A kill
    before the pointer moves leaves an unnamed upload (deleted by the next write), never a
    torn newest file."""

    def write(self, fill: Fill, tag: str) -> Location:
        names = self._pointed()
        key = f"{Path(self.name).stem}-{tag}-{uuid.uuid4().hex[:8]}{Path(self.name).suffix}"
        target = self.folder / key
        target.write_with(fill)
        self._point(key, names[0] if names else None)
        return target

    def _candidates(self) -> list[Location]:
        return [self.folder / name for name in self._pointed()]

    def named(self) -> list[Location]:
        return self._candidates()  # what the pointer names, whether or not it is there

    def discard_newest(self, keep_as: Location) -> None:
        super().discard_newest(keep_as)
        names = self._pointed()
        self._point(names[1] if len(names) > 1 else None, None)

    def remove_all(self) -> None:
        versions = self.versions()
        self.pointer.unlink()  # first: a kill midway leaves unnamed uploads (pruned later), not a pointer to nothing
        for version in versions:
            version.unlink()

    def _pointed(self) -> list[str]:
        try:
            pointer = json.loads(self.pointer.read_text())
        except FileNotFoundError:
            return []
        return [name for name in (pointer.get("latest"), pointer.get("previous")) if name]

    def _point(self, latest: str | None, previous: str | None) -> None:
        self.pointer.write_text(json.dumps({"latest": latest, "previous": previous}) + "\n")
        # Prune what the pointer no longer names: earlier versions, and uploads that a kill
        # left unnamed. Only this split's writer writes here, so nothing in flight is lost.
        stem, suffix = Path(self.name).stem + "-", Path(self.name).suffix
        for entry in self.folder.list():
            if entry.name.startswith(stem) and entry.name.endswith(suffix) and entry.name not in (latest, previous):
                entry.location.unlink()
