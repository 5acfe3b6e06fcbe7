"""A run's launch lease on S3: at most one coordinator per run where there is no flock.

    RUN/launch.lease    JSON: the holder's pid, host, start time and the lease's ttl_s

A launch creates the object with a conditional PUT (If-None-Match: *): of two launches
racing, exactly one wins. It renews it every RENEW_S seconds with If-Match on its own ETag
and deletes it when it ends. A launch killed with SIGKILL cannot delete it: the lease then
expires ttl_s after its last renewal, judged by the store's clock alone (the object's
Last-Modified against the Date of the same response), and a later launch takes it over with
If-Match on the expired lease's ETag, so that of two launches taking over, one wins. A lease
whose holder ran on this very host and has exited is over at once, as a flock would be: a
relaunch after a crash on one machine need not wait out the ttl.

Conditional writes are S3's (since 2024; MinIO, R2 and moto have them too); pyarrow.fs
cannot send them, so this module uses boto3, which also reads the standard credentials and
AWS_ENDPOINT_URL.
"""
from __future__ import annotations

import datetime as dt
import email.utils
import json
import os
import socket
import threading
from dataclasses import dataclass

from manifests.errors import first_line
from manifests.locks.holder import LaunchHolder, LaunchLockedError, refusal
from manifests.storage import S3Location, StorageError, s3_client

LEASE_NAME = "launch.lease"
TTL_S = 30.0
RENEW_S = 10.0


@dataclass(frozen=True)
class Lease:
    """The lease object as read: its holder, ETag, and age on the store's clock."""

    holder: dict
    etag: str
    age_s: float

    @property
    def ttl_s(self) -> float:
        return float(self.holder.get("ttl_s", TTL_S))

    @property
    def holder_exited(self) -> bool:
        """Its holder ran on this host and is no longer running."""
        pid = self.holder.get("pid")
        if self.holder.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, someone else's
        return False

    @property
    def live(self) -> bool:
        return self.age_s < self.ttl_s and not self.holder_exited


def _is_precondition_failure(exc) -> bool:
    import botocore.exceptions

    if not isinstance(exc, botocore.exceptions.ClientError):
        return False
    return exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "ConditionalRequestConflict",
                                                            "NoSuchKey", "404", "412", "409")  # fmt: skip


def read_lease(root: S3Location) -> Lease | None:
    """The run's lease, or None when no launch holds one."""
    import botocore.exceptions

    key = (root / LEASE_NAME).key
    try:
        response = s3_client().get_object(Bucket=root.bucket, Key=key)
    except botocore.exceptions.ClientError as exc:
        if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
            return None
        raise StorageError(f"cannot read {root / LEASE_NAME}: {first_line(exc)}") from None
    try:
        holder = json.loads(response["Body"].read() or b"{}")
    except ValueError:
        holder = {}
    now = email.utils.parsedate_to_datetime(response["ResponseMetadata"]["HTTPHeaders"]["date"])
    age = (now - response["LastModified"]).total_seconds()
    return Lease(holder, response["ETag"], max(0.0, age))


class S3Lease:
    """Held by a coordinator from its first write to the run until it exits; `lost` is set
    when a renewal finds that another launch took the lease over (this one must stop)."""

    def __init__(self, root: S3Location, ttl_s: float = TTL_S, renew_s: float = RENEW_S):
        self.root, self.ttl_s, self.renew_s = root, ttl_s, renew_s
        self.key = (root / LEASE_NAME).key
        self.lost = threading.Event()
        self._etag: str | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self._client = s3_client()

    def _body(self) -> bytes:
        holder = {"pid": os.getpid(), "host": socket.gethostname(), "ttl_s": self.ttl_s,
                  "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
        return (json.dumps(holder) + "\n").encode()

    def acquire(self) -> None:
        body = self._body()
        try:
            self._etag = self._put(body, IfNoneMatch="*")
        except Exception as exc:
            if not _is_precondition_failure(exc):
                raise StorageError(f"cannot create the lease {self.root / LEASE_NAME}: {first_line(exc)}") from None
            current = read_lease(self.root)
            if current is not None and current.live:
                raise LaunchLockedError(refusal(self.root, holder_of(current))) from None
            try:  # expired (its launch was killed), or deleted meanwhile: take it over
                if current is None:
                    self._etag = self._put(body, IfNoneMatch="*")
                else:
                    self._etag = self._put(body, IfMatch=current.etag)
            except Exception as again:
                if not _is_precondition_failure(again):
                    raise StorageError(f"cannot take over the lease {self.root / LEASE_NAME}: "
                                       f"{first_line(again)}") from None  # fmt: skip
                taker = read_lease(self.root)
                holder = holder_of(taker) if taker else LaunchHolder(None, None, None)
                raise LaunchLockedError(refusal(self.root, holder)) from None
        self._renewer = threading.Thread(target=self._renew_until_stopped, name="lease-renewer", daemon=True)
        self._renewer.start()

    def _put(self, body: bytes, **condition) -> str:
        return self._client.put_object(Bucket=self.root.bucket, Key=self.key, Body=body, **condition)["ETag"]

    def _renew_until_stopped(self) -> None:
        body = self._body()
        while not self._stop.wait(self.renew_s):
            try:
                self._etag = self._put(body, IfMatch=self._etag)
            except Exception as exc:
                if _is_precondition_failure(exc):
                    self.lost.set()  # taken over: this launch's view of the run is stale
                    return
                # A network error: try again at the next turn; the ttl allows two misses.

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        if self._etag is not None and not self.lost.is_set():
            current = read_lease(self.root)
            if current is not None and current.etag == self._etag:
                self._client.delete_object(Bucket=self.root.bucket, Key=self.key)
            self._etag = None

def holder_of(lease: Lease):
    h = lease.holder
    return LaunchHolder(h.get("pid"), h.get("host"), h.get("started_at"), lease_age_s=lease.age_s,
                        lease_ttl_s=lease.ttl_s, lease_holder_exited=lease.holder_exited)  # fmt: skip
