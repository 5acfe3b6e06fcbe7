"""A Location on object storage (any pyarrow.fs store; on S3 proper, single-GET reads, uploads
and deletes through boto3). One PUT, or one completed multipart upload, is atomic to readers.

No object lands torn: pyarrow's output stream completes its upload when the `with` block
exits, also by an exception (a Ctrl-C or SIGTERM halfway through a generator), which left a
truncated object under the final name (apache/arrow#40502). On S3 an upload is one PUT, or a
multipart upload that is aborted on any exception; on other stores it goes to a temporary key
that is moved into place only once whole."""
from __future__ import annotations

import contextlib
import errno
import io
import itertools
import os
import random
import shutil
import tempfile
import time
import uuid
from typing import BinaryIO, Iterator

from manifests.errors import first_line
from manifests.storage.location import Change, Entry, Fill, Location, StorageError, WriteConflict
from manifests.storage.versioned import PointedVersionedFile


UPLOAD_PART_BYTES = 8 << 20
"""An upload's part (S3's minimum is 5 MiB, except the last): smaller objects go in one PUT."""
UPDATE_ATTEMPTS = 20
"""Reads, changes and conditional writes an S3Location.update tries while other writers win."""

_FILESYSTEMS: dict[tuple, object] = {}


def filesystem_of(scheme: str, netloc: str, text: str):
    """pyarrow's filesystem for a URI, and the path in it; one client per store, reused."""
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
        return type(self)(self.fs, self.base, f"{self.path}/{name}")

    def versioned(self, name: str, previous_name: str, pointer_name: str) -> PointedVersionedFile:
        return PointedVersionedFile(self, name, previous_name, pointer_name)

    @property
    def parent(self) -> "ObjectLocation":
        return type(self)(self.fs, self.base, self.path.rsplit("/", 1)[0])

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

    def read_bytes(self) -> bytes:
        with self.fs.open_input_stream(self.path) as f:
            return f.read()

    def write_bytes(self, data: bytes) -> None:
        self.upload(io.BytesIO(data))

    def write_with(self, fill: Fill) -> None:
        with scratch_dir() as folder:
            tmp = os.path.join(folder, self.name)
            fill(tmp)
            with open(tmp, "rb") as source:
                self.upload(source)

    def upload(self, source: BinaryIO) -> None:
        """Write what `source` holds as this object, whole or not at all: to a temporary key
        first (deleted if anything goes wrong), then moved into place."""
        staging = type(self)(self.fs, self.base, f"{self.path}.upload-{uuid.uuid4().hex[:12]}")
        try:
            with self.fs.open_output_stream(staging.path) as target:
                shutil.copyfileobj(source, target, UPLOAD_PART_BYTES)
            staging.move(self)
        except BaseException:
            with contextlib.suppress(Exception):
                staging.unlink()
            raise

    @contextlib.contextmanager
    def reading(self) -> Iterator[str]:
        """A local copy to read with libraries that want a file name, deleted afterwards."""
        with scratch_dir() as folder:
            tmp = os.path.join(folder, self.name)
            with open(tmp, "wb") as target:
                self._copy_to(target)
            yield tmp

    def _copy_to(self, target) -> None:
        with self.fs.open_input_stream(self.path) as source:
            shutil.copyfileobj(source, target, 8 << 20)

    def list(self) -> list[Entry]:
        import pyarrow.fs as pafs

        infos = self.fs.get_file_info(pafs.FileSelector(self.path, allow_not_found=False))
        return [
            Entry(type(self)(self.fs, self.base, info.path), info.type == pafs.FileType.Directory,
                  info.size, info.mtime_ns)  # fmt: skip
            for info in infos
        ]

    def unlink(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path)

    def move(self, target: "ObjectLocation") -> None:
        self.fs.copy_file(self.path, target.path)
        self.unlink()

    def mkdir(self) -> None:
        pass  # object stores have no folders: a key's prefix is made with the key


class S3Location(ObjectLocation):
    """On S3 proper (and stores that speak its API): reads in one GET and deletes through boto3,
    which also sends the conditional writes of the launch lease (manifests/locks/lease.py)."""

    def read_bytes(self) -> bytes:
        return _read_s3_object(self, lambda body: body.read())

    def read_with_etag(self) -> tuple[bytes, str]:
        """The object's bytes and the ETag of that very version (one GET)."""
        return _read_s3_object(self, lambda body: body.read(), with_etag=True)

    def write_if(self, data: bytes, etag: str | None) -> str:
        """PUT `data` only while the object is still the version `etag` (None: only while there
        is none), and return the new version's ETag; raise WriteConflict when another writer
        got there first. S3's conditional writes: the store itself refuses a stale writer."""
        condition = {"IfMatch": etag} if etag is not None else {"IfNoneMatch": "*"}
        try:
            return s3_client().put_object(Bucket=self.bucket, Key=self.key, Body=data, **condition)["ETag"]
        except Exception as exc:
            if is_precondition_failure(exc):
                raise WriteConflict(f"{self} was written by another writer") from None
            raise

    def update(self, change: Change) -> None:
        """Written only over the version read (If-Match; If-None-Match when there was none);
        when another writer got there first, read, changed and tried again."""
        for attempt in range(UPDATE_ATTEMPTS):
            try:
                data, etag = self.read_with_etag()
            except FileNotFoundError:
                data, etag = None, None
            try:
                self.write_if(change(data), etag)
                return
            except WriteConflict:
                time.sleep(random.uniform(0, 0.1 * (attempt + 1)))
        raise WriteConflict(f"{self} kept changing under {UPDATE_ATTEMPTS} attempts to update it; try again")

    def upload(self, source: BinaryIO) -> None:
        """One PUT for what fits in a part; else a multipart upload, completed only once every
        part is in and aborted on any exception, Ctrl-C included: S3 then keeps the old object
        (or none), never a part of the new one."""
        client = s3_client()
        chunks = iter(lambda: source.read(UPLOAD_PART_BYTES), b"")
        first = next(chunks, b"")
        second = next(chunks, b"") if len(first) == UPLOAD_PART_BYTES else b""
        if not second:
            client.put_object(Bucket=self.bucket, Key=self.key, Body=first)
            return
        upload_id = client.create_multipart_upload(Bucket=self.bucket, Key=self.key)["UploadId"]
        try:
            parts = []
            for number, part in enumerate(itertools.chain([first, second], chunks), start=1):
                sent = client.upload_part(Bucket=self.bucket, Key=self.key, UploadId=upload_id, PartNumber=number, Body=part)
                parts.append({"PartNumber": number, "ETag": sent["ETag"]})
            client.complete_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id,
                                             MultipartUpload={"Parts": parts})  # fmt: skip
        except BaseException:
            with contextlib.suppress(Exception):
                client.abort_multipart_upload(Bucket=self.bucket, Key=self.key, UploadId=upload_id)
            raise

    def _copy_to(self, target) -> None:
        _read_s3_object(self, lambda body: shutil.copyfileobj(body, target, 8 << 20))

    def unlink(self) -> None:
        # boto3, not pyarrow: pyarrow's delete leaves an empty "folder/" marker object behind
        # when it removes a folder's last file (apache/arrow#36275).
        s3_client().delete_object(Bucket=self.bucket, Key=self.key)


def is_precondition_failure(exc: BaseException) -> bool:
    """A conditional write or read refused: the object is not (or no longer) the version named."""
    import botocore.exceptions

    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    return exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict",
                                                            "NoSuchKey", "404", "412", "409")  # fmt: skip


def is_transient(exc: BaseException) -> bool:
    """A request that may succeed if sent again: a timeout, a lost connection, or the store's
    5xx / SlowDown. Not a refusal (403, 400) or a precondition failure."""
    import botocore.exceptions

    if isinstance(exc, botocore.exceptions.BotoCoreError):
        return True
    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
    return status >= 500 or exc.response.get("Error", {}).get("Code") in ("SlowDown", "RequestTimeout", "Throttling")


def _read_s3_object(file: ObjectLocation, consume, with_etag: bool = False):
    """One GET, so one version of the object, whole. Not pyarrow's reader: it asks for the
    size first (HEAD), then for byte ranges, and an object replaced in between (the manifest,
    a generator) is read as the new object cut at the old one's length."""
    import botocore.exceptions

    try:
        response = s3_client().get_object(Bucket=file.bucket, Key=file.key)
        with contextlib.closing(response["Body"]) as body:
            return (consume(body), response["ETag"]) if with_etag else consume(body)
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            raise FileNotFoundError(errno.ENOENT, "no such object", str(file)) from None
        raise OSError(f"cannot read {file}: {first_line(exc)}") from None
    except botocore.exceptions.BotoCoreError as exc:  # the connection, mid-request or mid-body
        raise OSError(f"cannot read {file}: {first_line(exc)}") from None


_S3_CLIENTS: dict[tuple[str | None, float | None], object] = {}
"""Per (endpoint, timeout): the default client, and the lease's with bounded timeouts."""


def s3_client(timeout_s: float | None = None):
    """This process's boto3 S3 client (standard credentials and AWS_ENDPOINT_URL), made once.
    With `timeout_s`, one whose requests give up after that long, without retrying: for a
    caller that retries on its own schedule (the lease's renewals), which boto3's defaults
    (60 s timeouts, retried up to 4 times) would hold up for minutes."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if (endpoint, timeout_s) not in _S3_CLIENTS:
        import boto3
        from botocore.config import Config

        config = None if timeout_s is None else Config(connect_timeout=timeout_s, read_timeout=timeout_s,
                                                       retries={"mode": "standard", "total_max_attempts": 1})  # fmt: skip
        _S3_CLIENTS[endpoint, timeout_s] = boto3.client("s3", config=config)
    return _S3_CLIENTS[endpoint, timeout_s]


@contextlib.contextmanager
def scratch_dir() -> Iterator[str]:
    """A private temporary folder for staging an upload or a download, removed on exit."""
    folder = tempfile.mkdtemp(prefix="acgan-")
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)
