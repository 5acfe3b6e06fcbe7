"""Where a run and its data live: a local folder, or a prefix on object storage.

    --run runs/in1k                 a local folder, or one every node mounts (NFS, Lustre)
    --run s3://bucket/runs/in1k     any URI pyarrow.fs.FileSystem.from_uri accepts:
    --run gs://bucket/runs/in1k     s3://, gs://, hdfs://, abfs://, ...

Every reader and writer of a run (and of an image folder given as --data) goes through a
Location, which offers the few operations a run needs, with one promise on both kinds of
storage: a file is seen whole, old or new, never partly written.

- Local: written to a temporary file, fsynced, renamed over the old one, the folder fsynced
  (manifests/atomic_files.py).
- Object storage: written in one PUT (a multipart upload for large files, which also appears
  at once, when complete). There is no rename: files that must survive a kill in the middle
  of a rewrite are VersionedFiles, uploaded under a new key each time and named by a small
  pointer object.

Credentials and endpoints come the standard way: AWS_* environment variables,
AWS_ENDPOINT_URL, profiles, instance roles (and each store's own). A URI that carries a
secret is refused, so that none is ever stored in run.json or printed.
"""
from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlsplit

from manifests.atomic_files import atomic_write, atomic_write_bytes
from manifests.errors import UserError, first_line

Fill = Callable[[str], None]
"""Writes a file's content to the local path it is given."""


class StorageError(UserError):
    """A location that cannot be used: a bad URI, no credentials, no bucket, no access."""


def is_uri(text: str) -> bool:
    """s3://bucket/x is a URI; runs/x, /abs/x and C:\\x are paths."""
    scheme = urlsplit(str(text)).scheme
    return len(scheme) > 1 and "://" in str(text)


def location(where: "str | os.PathLike | Location") -> "Location":
    """A Location for a local path or a storage URI (file:// URIs are local paths)."""
    if isinstance(where, Location):
        return where
    text = os.fspath(where)
    if not is_uri(text):
        return LocalLocation(Path(text))
    parts = urlsplit(text)
    if parts.scheme == "file":
        return LocalLocation(Path(parts.path))
    if parts.password or parts.username:
        raise StorageError(
            f"{parts.scheme}://{parts.hostname}{parts.path}: credentials in the URI are refused (they would be stored "
            f"in run.json); give them the standard way (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, a profile, "
            f"an instance role)"
        )
    if parts.query or parts.fragment:
        raise StorageError(
            f"{text}: options in the URI are not accepted; set AWS_ENDPOINT_URL and AWS_DEFAULT_REGION instead"
        )
    filesystem, path = _filesystem(parts.scheme, parts.netloc, text)
    return ObjectLocation(filesystem, f"{parts.scheme}://{parts.netloc}", path.rstrip("/"))


_FILESYSTEMS: dict[tuple, object] = {}


def _filesystem(scheme: str, netloc: str, text: str):
    import pyarrow as pa
    import pyarrow.fs as pafs

    if scheme == "s3":
        check_s3_credentials(text)
    key = (scheme, netloc, os.environ.get("AWS_ENDPOINT_URL"))
    try:
        filesystem, path = pafs.FileSystem.from_uri(text)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        raise StorageError(f"cannot open {text}: {first_line(exc)}; pass a local path or a URI such as "
                           f"s3://bucket/prefix") from None  # fmt: skip
    # One client per store: its connections and credentials are reused by every call.
    return _FILESYSTEMS.setdefault(key, filesystem), path


def check_s3_credentials(text: str) -> None:
    """Refuse an s3:// location when no credentials can be found, before anything is tried."""
    import botocore.session

    if botocore.session.get_session().get_credentials() is None:
        raise StorageError(
            f"no AWS credentials found for {text}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (or AWS_PROFILE), "
            f"or run where an instance role provides them"
        )


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
    on_s3 = False
    """On S3 proper: conditional writes and single-GET reads through boto3 (see below)."""

    def __truediv__(self, name: str) -> "Location":
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

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode())

    def relative_to(self, root: "Location") -> str:
        """'splits/041/generator.safetensors' for a file under root."""
        return root.path_to(str(self))

    def path_to(self, file: str) -> str:
        """The path of `file` (as str() of a Location under this folder gives it) relative to
        this folder; a string operation, so no store is opened for it."""
        base = str(self).rstrip("/") + "/"
        if not file.startswith(base):
            raise ValueError(f"{file} is not under {self}")
        return file[len(base) :]


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

    @property
    def parent(self) -> "LocalLocation":
        return LocalLocation(self.path.parent)

    def absolute(self) -> "LocalLocation":
        return LocalLocation(self.path.resolve())

    def path_to(self, file: str) -> str:
        return os.path.relpath(file, self.path)

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


class ObjectLocation(Location):
    is_local = False

    def __init__(self, filesystem, base: str, path: str):
        self.fs, self.base, self.path = filesystem, base, path  # base: "s3://bucket"; path: "bucket/key"

    def __str__(self) -> str:
        # from_uri's path includes the bucket for s3/gs; hdfs and the like give "/key".
        bucket = self.base.split("://", 1)[1]
        key = self.path[len(bucket) :] if bucket and self.path.startswith(bucket) else self.path
        return self.base + ("/" + key.lstrip("/") if key.strip("/") else "")

    def __truediv__(self, name: str) -> "ObjectLocation":
        return ObjectLocation(self.fs, self.base, f"{self.path}/{name}")

    @property
    def parent(self) -> "ObjectLocation":
        return ObjectLocation(self.fs, self.base, self.path.rsplit("/", 1)[0])

    def absolute(self) -> "ObjectLocation":
        return self

    def require_bucket(self) -> None:
        """Raise a StorageError naming the bucket when it does not exist (or cannot be reached)."""
        import pyarrow.fs as pafs

        try:
            missing = self.fs.get_file_info(self.bucket).type == pafs.FileType.NotFound
        except OSError as exc:
            raise StorageError(f"cannot reach {self} ({first_line(exc)}); check AWS_ENDPOINT_URL, the network "
                               f"and the credentials") from None  # fmt: skip
        if missing:
            raise StorageError(f"bucket {self.bucket} of {self} does not exist; create it, or fix the URI")

    @property
    def bucket(self) -> str:
        return self.path.split("/", 1)[0]

    @property
    def key(self) -> str:
        return self.path.split("/", 1)[1] if "/" in self.path else ""

    def _info(self):
        return self.fs.get_file_info(self.path)

    def exists(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type != pafs.FileType.NotFound

    def is_file(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.File

    def is_dir(self) -> bool:
        import pyarrow.fs as pafs

        return self._info().type == pafs.FileType.Directory

    @property
    def on_s3(self) -> bool:
        return self.base.startswith("s3://")

    def read_bytes(self) -> bytes:
        if self.on_s3:
            return _read_s3_object(self, lambda body: body.read())
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def write_bytes(self, data: bytes) -> None:
        with self.fs.open_output_stream(self.path) as f:
            f.write(data)

    def write_with(self, fill: Fill) -> None:
        with scratch_dir() as folder:
            tmp = os.path.join(folder, self.name)
            fill(tmp)
            with open(tmp, "rb") as source, self.fs.open_output_stream(self.path) as target:
                shutil.copyfileobj(source, target, 8 << 20)

    @contextlib.contextmanager
    def reading(self) -> Iterator[str]:
        """A local copy to read with libraries that want a file name, deleted afterwards."""
        with scratch_dir() as folder:
            tmp = os.path.join(folder, self.name)
            with open(tmp, "wb") as target:
                if self.on_s3:
                    _read_s3_object(self, lambda body: shutil.copyfileobj(body, target, 8 << 20))
                else:
                    with self.fs.open_input_stream(self.path) as source:
                        shutil.copyfileobj(source, target, 8 << 20)
            yield tmp

    def list(self) -> list[Entry]:
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=False))
        return [
            Entry(ObjectLocation(self.fs, self.base, info.path), info.type == pafs.FileType.Directory,
                  info.size, info.mtime_ns)  # fmt: skip
            for info in infos
        ]

    def unlink(self) -> None:
        if self.on_s3:
            # boto3, not pyarrow: pyarrow's delete leaves an empty "folder/" marker object
            # behind when it removes a folder's last file (apache/arrow#36275).
            s3_client().delete_object(Bucket=self.bucket, Key=self.key)
            return
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path)

    def move(self, target: "ObjectLocation") -> None:
        self.fs.copy_file(self.path, target.path)
        self.unlink()

    def mkdir(self) -> None:
        pass  # object stores have no folders: a key's prefix is made with the key


def _read_s3_object(file: ObjectLocation, consume):
    """One GET, so one version of the object, whole. Not pyarrow's reader: it asks for the
    size first (HEAD), then for byte ranges, and an object replaced in between (the manifest,
    a generator) is read as the new object cut at the old one's length."""
    import botocore.exceptions

    try:
        body = s3_client().get_object(Bucket=file.bucket, Key=file.key)["Body"]
        with contextlib.closing(body):
            return consume(body)
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise FileNotFoundError(errno.ENOENT, "no such object", str(file)) from None
        raise OSError(f"cannot read {file}: {first_line(exc)}") from None
    except botocore.exceptions.BotoCoreError as exc:  # the connection, mid-request or mid-body
        raise OSError(f"cannot read {file}: {first_line(exc)}") from None


_S3_CLIENTS: dict[str | None, object] = {}


def s3_client():
    """This process's boto3 S3 client (standard credentials and AWS_ENDPOINT_URL), made once."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if endpoint not in _S3_CLIENTS:
        import boto3

        _S3_CLIENTS[endpoint] = boto3.client("s3")
    return _S3_CLIENTS[endpoint]


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    """A private temporary folder for staging an upload or a download, removed on exit."""
    folder = tempfile.mkdtemp(prefix="acgan-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class VersionedFile:
    """A large file rewritten at every checkpoint, which a kill at any instant must leave
    readable: its newest version and the one before it.

    - Local: NAME, and NAME.prev beside it; the rename that installs the new file first
      moves the old one aside (manifests/atomic_files.py).
    - Object storage: each version is uploaded under a key of its own (NAME-STEP-TOKEN),
      then a small pointer object (POINTER) is written in one PUT naming the newest and the
      previous key; keys it no longer names are then deleted. A kill before the pointer
      moves leaves an unnamed upload (deleted by the next write), never a torn newest file.
    """

    def __init__(self, folder: Location, name: str, previous_name: str, pointer_name: str):
        self.folder, self.name, self.previous_name = folder, name, previous_name
        self.pointer = folder / pointer_name

    def write(self, fill: Fill, tag: str) -> Location:
        """Write a new newest version; `tag` goes into its key on object storage (the step)."""
        if self.folder.is_local:
            self.folder.mkdir()
            target = self.folder / self.name
            atomic_write(target.path, fill, keep_previous=(self.folder / self.previous_name).path)
            return target
        names = self._pointed()
        key = f"{Path(self.name).stem}-{tag}-{uuid.uuid4().hex[:8]}{Path(self.name).suffix}"
        target = self.folder / key
        target.write_with(fill)
        self._point(key, names[0] if names else None)
        return target

    def versions(self) -> list[Location]:
        """The versions a reader may use, newest first (at most two), that exist."""
        if self.folder.is_local:
            candidates = [self.folder / self.name, self.folder / self.previous_name]
        else:
            candidates = [self.folder / name for name in self._pointed()]
        return [c for c in candidates if c.exists()]

    def discard_newest(self, keep_as: Location) -> None:
        """The newest version is unusable: move it to `keep_as` (for inspection), so that the
        next write does not rotate it over the good previous one."""
        self.versions()[0].move(keep_as)
        if not self.folder.is_local:
            names = self._pointed()
            self._point(names[1] if len(names) > 1 else None, None)

    def remove_all(self) -> None:
        for version in self.versions():
            version.unlink()
        if not self.folder.is_local:
            self.pointer.unlink()

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
