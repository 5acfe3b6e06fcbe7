"""Where a run and its data live: a local folder, or a prefix on object storage.

    --run runs/in1k                 a local folder, or one every node mounts (NFS, Lustre)
    --run s3://bucket/runs/in1k     any URI pyarrow.fs.FileSystem.from_uri accepts:
    --run gs://bucket/runs/in1k     s3://, gs://, hdfs://, abfs://, ...

Every reader and writer of a run (and of an image folder given as --data) goes through a
Location, which offers the few operations a run needs, with one promise on both kinds of
storage: a file is seen whole, old or new, never partly written.

- Local: written to a temporary file, fsynced, renamed over the old one, the folder fsynced
  (manifests/storage/atomic_files.py).
- Object storage: written in one PUT (a multipart upload for large files, which also appears
  at once, when complete). There is no rename: files that must survive a kill in the middle
  of a rewrite are VersionedFiles, uploaded under a new key each time and named by a small
  pointer object.

Credentials and endpoints come the standard way: AWS_* environment variables,
AWS_ENDPOINT_URL, profiles, instance roles (and each store's own). A URI that carries a
secret is refused, so that none is ever stored in run.json or printed.
"""
from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

from manifests.storage.local import LocalLocation
from manifests.storage.location import Entry, Fill, Location, StorageError, WriteConflict
from manifests.storage.objects import (ObjectLocation, S3Location, filesystem_of, is_precondition_failure, is_transient,
                                       s3_client, scratch_dir)  # fmt: skip
from manifests.storage.versioned import VersionedFile

__all__ = ["Entry", "Fill", "LocalLocation", "Location", "ObjectLocation", "S3Location", "StorageError", "VersionedFile",
           "WriteConflict", "is_precondition_failure", "is_transient", "is_uri", "location", "s3_client", "scratch_dir"]  # fmt: skip


def is_uri(text: str) -> bool:
    """s3://bucket/x is a URI; runs/x, /abs/x and C:\\x are paths."""
    scheme = urlsplit(str(text)).scheme
    return len(scheme) > 1 and "://" in str(text)


def redacted(where: "str | os.PathLike | Location") -> str:
    """A path or URI as a message may show it: a URI loses what may hold a credential (its
    user:password@ and its ?query), so that no error or log ever prints a secret back."""
    text = str(where) if isinstance(where, Location) else os.fspath(where)
    if not is_uri(text):
        return text
    parts = urlsplit(text)
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    hidden = "?..." if parts.query or parts.fragment else ""
    return f"{parts.scheme}://{host}{parts.path}{hidden}"


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
            f"{redacted(text)}: options in the URI are not accepted (nor shown: they may hold credentials); set "
            f"AWS_ENDPOINT_URL and AWS_DEFAULT_REGION instead"
        )
    filesystem, path = filesystem_of(parts.scheme, parts.netloc, text)
    kind = S3Location if parts.scheme == "s3" else ObjectLocation
    return kind(filesystem, f"{parts.scheme}://{parts.netloc}", path.rstrip("/"))
