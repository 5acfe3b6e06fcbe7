"""A run directory, on local disk or object storage: its spec, its manifest and each
split's checkpoint folder.

    RUN/
      run.json             what was launched (data, splits, steps, model config, seed)
      manifest.parquet     one row per split; written only by the coordinator
      data-index.parquet   an image folder's files, listed once per launch by the coordinator
      splits/041/          split 41's checkpoints (written only by its worker)

Every file is read and written through manifests/storage/: a reader at any instant sees
a whole old file or a whole new one, never a partial write, and a power loss neither.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import uuid

import pyarrow as pa

from manifests.errors import UserError, first_line
from manifests.storage import Location, StorageError, VersionedFile, WriteConflict, location
from manifests.storage.local import probe_write
from manifests.tables.data_index import DATA_INDEX_NAME
from manifests.tables.manifest import MANIFEST_FORMAT, MANIFEST_SCHEMA, SplitRecord
from manifests.tables.parquet import TableError, table_rows

MANIFEST_NAME = "manifest.parquet"
SPEC_NAME = "run.json"
STATE_NAME = "state.pt"
PREVIOUS_STATE_NAME = "state.prev.pt"
STATE_POINTER_NAME = "state.json"
"""A split's training state: the newest and the previous (on object storage, two uploads
named by the pointer; workers/checkpoints.py writes and reads them)."""


class RunDirError(UserError):
    """A run directory, manifest or spec that cannot be used as it is."""


_TRAINING_STATES: dict[str, VersionedFile] = {}


def training_states(split_dir: "Location | str") -> VersionedFile:
    """A split's training state file, newest and previous, on any storage: one object per
    folder in a process, so that an attempt's claim on it (VersionedFile.claim) holds for
    every checkpoint the attempt writes."""
    folder = location(split_dir)
    key = str(folder)
    if key not in _TRAINING_STATES:
        _TRAINING_STATES[key] = folder.versioned(STATE_NAME, PREVIOUS_STATE_NAME, STATE_POINTER_NAME)
    return _TRAINING_STATES[key]


@contextlib.contextmanager
def storage_errors(what: str):
    """An unreachable store or a denied request becomes one line naming `what`."""
    try:
        yield
    except StorageError as exc:
        raise RunDirError(str(exc)) from None
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise RunDirError(f"cannot read or write {what}: {first_line(exc, 300)}") from None


class LaunchTakenOver(RunDirError):
    """The launch writing this run lost its lease: another launch owns the run now."""


class RunDir:
    def __init__(self, root: "str | os.PathLike | Location"):
        with storage_errors(str(root)):
            self.root = location(root)
        self._fence = None
        self._manifest_etag: str | None = None
        """On S3: the ETag of the manifest this process last read or wrote."""
        self._manifest_unconfirmed: set[bytes] = set()
        """On S3: digests of manifests this process sent whose answer it never got (an
        interrupt or a timeout after the store applied the write)."""

    def fence_with(self, guard) -> None:
        """From now on, write the manifest only while `guard` (the launch's lock or lease) is
        valid, and on S3 only over the version this process last read or wrote (If-Match):
        a launch that was taken over cannot overwrite the manifest of the one that took over."""
        self._fence = guard

    @property
    def manifest_path(self) -> Location:
        return self.root / MANIFEST_NAME

    @property
    def spec_path(self) -> Location:
        return self.root / SPEC_NAME

    @property
    def data_index_path(self) -> Location:
        """The listing of the run's image folder (manifests/tables/data_index.py); other data has none."""
        return self.root / DATA_INDEX_NAME

    def split_dir(self, split_id: int) -> Location:
        return self.root / "splits" / f"{split_id:03d}"

    def relative(self, file: str) -> str:
        """A file's path as the manifest records it: relative to the run, wherever it lives."""
        return self.root.path_to(file)

    def exists(self) -> bool:
        with storage_errors(str(self.root)):
            return self.manifest_path.is_file()

    def require(self) -> None:
        """Raise a RunDirError that says what to do when this is not a launched run."""
        with storage_errors(str(self.root)):
            self._require()

    def _require(self) -> None:
        if not self.root.is_local:
            self.root.require_bucket()
        if self.manifest_path.is_file():
            return  # the common case in one lookup (each is a request on object storage)
        if self.root.exists() and not self.root.is_dir():
            raise RunDirError(f"--run {self.root} is a file, not a run directory; pass the folder a launch used")
        if not self.root.exists():
            raise RunDirError(
                f"run directory {self.root} does not exist; start one with "
                f"`ensemble launch --run {self.root}` or pass --run DIR"
            )
        raise RunDirError(
            f"{self.root} holds no {MANIFEST_NAME}: it is not an ensemble run; "
            f"pass the --run DIR that `ensemble launch` used"
        )

    def check_writable(self) -> None:
        """Fail before any work starts when the run cannot be written, leaving nothing behind."""
        with storage_errors(str(self.root)):
            if not self.root.is_local:
                self.root.require_bucket()
                probe = self.root / f".write-probe-{uuid.uuid4().hex}"  # written and removed at once
                try:
                    probe.write_bytes(b"")
                    probe.unlink()
                except OSError as exc:
                    raise RunDirError(f"cannot write the run {self.root} ({first_line(exc, 300)}); "
                                      f"check the credentials' permissions on it") from None  # fmt: skip
                return
            if self.root.exists() and not self.root.is_dir():
                raise RunDirError(f"--run {self.root} is a file; pass a folder for the run")
        existing = self.root.path.absolute()
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise RunDirError(f"cannot create run directory {self.root}: {existing} is a file")
        try:
            probe_write(existing)
        except OSError as exc:
            raise RunDirError(
                f"cannot write the run {self.root} into {existing} ({exc.strerror or exc}); "
                f"pass a --run DIR you can write to"
            ) from None

    # -- spec ---------------------------------------------------------------------------
    def read_spec(self) -> dict:
        try:
            with storage_errors(str(self.spec_path)):
                return json.loads(self.spec_path.read_text())
        except FileNotFoundError:
            raise RunDirError(f"{self.spec_path} is missing; the run cannot be resumed") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{self.spec_path} is not valid JSON ({exc}); restore or remove it") from None

    def write_spec(self, spec: dict) -> None:
        self.spec_path.write_text(json.dumps(spec, indent=2, sort_keys=True) + "\n")

    # -- manifest -----------------------------------------------------------------------
    def read_manifest(self) -> list[SplitRecord]:
        self.require()
        try:
            # One read of the whole file: given a path, pyarrow may open the file again to read
            # the row groups after the footer, and a rewrite in between (a new inode) would
            # pair the old footer with the new file's bytes.
            if hasattr(self.manifest_path, "read_with_etag"):
                data, self._manifest_etag = self.manifest_path.read_with_etag()
            else:
                data = self.manifest_path.read_bytes()
        except OSError as exc:
            raise RunDirError(f"manifest {self.manifest_path} is unreadable ({first_line(exc)}); "
                              f"{MANIFEST_FORMAT.remedy}") from None  # fmt: skip
        try:
            table = MANIFEST_FORMAT.from_bytes(data, self.manifest_path)
        except TableError as exc:
            raise RunDirError(str(exc)) from None
        return [SplitRecord.from_row(row) for row in table_rows(table)]

    def write_manifest(self, records: list[SplitRecord]) -> None:
        table = pa.Table.from_pylist([r.to_row() for r in records], schema=MANIFEST_SCHEMA)
        data = MANIFEST_FORMAT.to_bytes(table)
        if self._fence is None:
            self.manifest_path.write_bytes(data)
            return
        taken_over = LaunchTakenOver(
            f"this launch lost its lease on {self.root} (it could not renew it in time and another launch "
            f"took the run over); it writes nothing more, and the other launch carries on")  # fmt: skip
        if not self._fence.valid():
            raise taken_over
        if not hasattr(self.manifest_path, "write_if"):
            self.manifest_path.write_bytes(data)
            return
        self._manifest_unconfirmed.add(hashlib.sha256(data).digest())
        try:
            self._manifest_etag = self.manifest_path.write_if(data, self._manifest_etag)
        except WriteConflict:
            own = self._own_landed_manifest()
            if own is None:
                raise taken_over from None
            try:
                self._manifest_etag = self.manifest_path.write_if(data, own)
            except WriteConflict:
                raise taken_over from None
        self._manifest_unconfirmed.clear()

    def _own_landed_manifest(self) -> str | None:
        """After a conditional write failed: the ETag of the manifest now stored when it is one
        this process sent but never heard back about (a Ctrl-C between the PUT and its answer:
        the fault-test loop caught one), else None: another launch wrote it."""
        try:
            data, etag = self.manifest_path.read_with_etag()
        except FileNotFoundError:
            return None
        return etag if hashlib.sha256(data).digest() in self._manifest_unconfirmed else None
