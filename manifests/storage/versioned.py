"""Files rewritten at every checkpoint that a kill at any instant must leave readable: the
newest version and the one before it. Each kind of storage keeps them its own way, and
`Location.versioned(...)` gives the kind that fits the folder."""
from __future__ import annotations

import json
import uuid
from pathlib import Path

from manifests.storage.atomic_files import atomic_write
from manifests.storage.location import Fill, Location, WriteConflict


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

    def claim(self) -> None:
        """Make this writer the only one that may move the versions on from now: a writer
        that claimed before (an older attempt still running somewhere) can no longer commit.
        Nothing to do where one writer is all there can be."""


class Superseded(Exception):
    """A newer writer claimed the versioned file (PointedVersionedFile.claim): this writer
    must stop, its view is stale."""


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
    torn newest file.

    On S3 the pointer is also a fence: a writer that claim()s it writes it with If-Match on
    the ETag it last saw, so once a newer writer (a retried attempt of the split) has claimed
    it, the older one's next move fails with Superseded instead of naming its own uploads
    and deleting the newer writer's."""

    _CLAIM_TRIES = 10

    def __init__(self, folder: Location, name: str, previous_name: str, pointer_name: str):
        super().__init__(folder, name, previous_name, pointer_name)
        self._claimed = False
        self._claim_token: str | None = None
        self._pointer_etag: str | None = None

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
        if self._claimed:  # a pointer to nothing, written under the claim; it prunes every version
            self._point(None, None)
            return
        versions = self.versions()
        self.pointer.unlink()  # first: a kill midway leaves unnamed uploads (pruned later), not a pointer to nothing
        for version in versions:
            version.unlink()

    def _pointed(self) -> list[str]:
        pointer = self._read_pointer()
        return [name for name in (pointer.get("latest"), pointer.get("previous")) if name]

    def _read_pointer(self) -> dict:
        try:
            if self._fenced:
                data, etag = self.pointer.read_with_etag()
            else:
                data, etag = self.pointer.read_bytes(), None
        except FileNotFoundError:
            data, etag = b"{}", None
        if self._claimed and etag != self._pointer_etag:
            if not self._own(data):
                raise Superseded(f"{self.pointer} was moved on by a newer attempt")
            self._pointer_etag = etag  # this writer's own move, whose answer it never kept
        return json.loads(data)

    def _own(self, data: bytes) -> bool:
        """Whether a stored pointer is one this writer wrote under its claim. A move whose PUT
        landed but whose answer was lost (a retried request then fails If-Match) or cut short
        by an interrupt leaves the store one ETag ahead of this writer: its own token in the
        pointer tells that apart from a newer attempt's claim."""
        try:
            return json.loads(data).get("claim") == self._claim_token
        except (ValueError, AttributeError):
            return False

    @property
    def _fenced(self) -> bool:
        return hasattr(self.pointer, "write_if")  # S3: conditional writes

    def claim(self) -> None:
        if not self._fenced:
            return
        for _ in range(self._CLAIM_TRIES):  # another writer may move it between the read and the write
            self._claimed = False
            try:
                data, etag = self.pointer.read_with_etag()
                pointer = json.loads(data)
            except FileNotFoundError:
                pointer, etag = {"latest": None, "previous": None}, None
            pointer["claim"] = token = uuid.uuid4().hex
            try:
                self._pointer_etag = self.pointer.write_if((json.dumps(pointer) + "\n").encode(), etag)
            except WriteConflict:
                continue
            self._claimed, self._claim_token = True, token
            return
        raise Superseded(f"could not claim {self.pointer}: other writers keep moving it")

    def _write_over_own_move(self, data: bytes) -> None:
        """A refused move: Superseded, unless the pointer stored is this writer's own (see
        _own); then the move is done (it is the pointer stored) or is made over it."""
        try:
            stored, etag = self.pointer.read_with_etag()
        except FileNotFoundError:
            stored, etag = b"", None
        if not self._own(stored):
            raise Superseded(f"{self.pointer} was moved on by a newer attempt; this one stops")
        self._pointer_etag = etag
        if stored != data:
            try:
                self._pointer_etag = self.pointer.write_if(data, etag)
            except WriteConflict:
                raise Superseded(f"{self.pointer} was moved on by a newer attempt; this one stops") from None

    def _point(self, latest: str | None, previous: str | None) -> None:
        body = {"latest": latest, "previous": previous}
        if self._claimed:
            # The claim inside: no two writers ever write the same bytes, so never the same ETag.
            body["claim"] = self._claim_token
            data = (json.dumps(body) + "\n").encode()
            try:
                self._pointer_etag = self.pointer.write_if(data, self._pointer_etag)
            except WriteConflict:
                self._write_over_own_move(data)
        else:
            self.pointer.write_text(json.dumps(body) + "\n")
        # Prune what the pointer no longer names: earlier versions, and uploads that a kill
        # left unnamed. One writer at a time writes here (on S3, the one holding the claim), so
        # nothing of its own in flight is lost.
        stem, suffix = Path(self.name).stem + "-", Path(self.name).suffix
        for entry in self.folder.list():
            if entry.name.startswith(stem) and entry.name.endswith(suffix) and entry.name not in (latest, previous):
                entry.location.unlink()
