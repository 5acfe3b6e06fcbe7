"""A run's launch lease on S3: at most one coordinator per run where there is no flock.

    RUN/launch.lease    JSON: the holder (a random id, pid, host, pid namespace and process
                        start time), the lease's epoch and ttl_s

A launch creates the object with a conditional PUT (If-None-Match: *): of two launches
racing, exactly one wins. It renews it every RENEW_S seconds with If-Match on its own ETag
and deletes it when it ends. A launch killed with SIGKILL cannot delete it: the lease then
expires ttl_s after its last renewal, judged by the store's clock alone (the object's
Last-Modified against the Date of the same response), and a later launch takes it over with
If-Match on the expired lease's ETag, so that of two launches taking over, one wins. A lease
whose holder ran on this very host and has exited is over at once, as a flock would be: a
relaunch after a crash on one machine need not wait out the ttl. "The same process" means the
same host, pid namespace, pid and process start time: containers that share a host name
(host networking) do not share pids, and a pid can be reused.

A lease is a fence, not a hint (issue 21; Kleppmann's fencing-token argument):
- its epoch grows on every renewal and every take-over, so every renewal has a new ETag and
  a take-over conditional on an expired lease's ETag fails if its holder renewed meanwhile;
- a holder that has not renewed for 5/6 of ttl_s, whatever the reason (a network error, a
  pause, SIGSTOP), counts itself as having lost it (`valid()`) and writes nothing more;
- what the holder commits is fenced by the store itself: the manifest is written with
  If-Match on the ETag this launch last wrote (manifests/run_dir.py), so a launch that was
  taken over cannot overwrite the manifest of the launch that took over; each split's
  checkpoint pointer is fenced the same way per attempt (manifests/storage/versioned.py).

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
import time
import uuid
from dataclasses import dataclass

from manifests.errors import first_line
from manifests.locks.holder import LaunchHolder, LaunchLockedError, refusal
from manifests.storage import S3Location, StorageError, is_precondition_failure, is_transient, s3_client

LEASE_NAME = "launch.lease"
TTL_S = 30.0
RENEW_SHARE = 1 / 3
"""A holder renews every ttl_s / 3: two renewals may fail before the lease expires."""
RETRY_S = 1.0
"""After a renewal that failed (a timeout, a network error), the next one is sent this soon."""
ACQUIRE_TRIES = 4
"""Acquiring's write is sent up to this many times while the store times out or is unreachable."""
MARGIN_SHARE = 1 / 6
"""A holder stops writing ttl_s / 6 before its lease can expire on the store's clock."""


def lease_ttl() -> float:
    """TTL_S, or ACGAN_LEASE_TTL_S seconds: how long a launch killed with SIGKILL keeps others
    off the run, and how long a paused or cut-off holder may go without renewing."""
    text = os.environ.get("ACGAN_LEASE_TTL_S")
    if not text:
        return TTL_S
    try:
        ttl = float(text)
    except ValueError:
        ttl = 0.0
    if not 3.0 <= ttl <= 3600.0:
        raise StorageError(f"ACGAN_LEASE_TTL_S must be a number of seconds from 3 to 3600, got {text!r}")
    return ttl


def process_identity(pid: int | None = None) -> dict:
    """What tells this process from another with the same pid: its pid namespace (an inode) and
    its start time in clock ticks since boot (Linux; empty elsewhere)."""
    pid = os.getpid() if pid is None else pid
    identity = {}
    try:
        identity["pid_ns"] = os.stat(f"/proc/{pid}/ns/pid").st_ino
        with open(f"/proc/{pid}/stat") as f:
            identity["proc_start"] = int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, ValueError, IndexError):
        pass
    return identity


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
    def epoch(self) -> int:
        return int(self.holder.get("epoch", 0))

    @property
    def holder_exited(self) -> bool:
        """Its holder ran in this very pid namespace of this host and is no longer running (its
        pid is gone, or now belongs to a process that started at another time)."""
        pid = self.holder.get("pid")
        if self.holder.get("host") != socket.gethostname() or not isinstance(pid, int):
            return False
        here = process_identity()
        if "pid_ns" not in self.holder or self.holder["pid_ns"] != here.get("pid_ns"):
            return False  # another container, or a holder that did not say: wait out its ttl
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False  # alive, someone else's
        return process_identity(pid).get("proc_start") != self.holder.get("proc_start")

    @property
    def live(self) -> bool:
        return self.age_s < self.ttl_s and not self.holder_exited


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

    def __init__(self, root: S3Location, ttl_s: float | None = None, renew_s: float | None = None):
        self.root, self.ttl_s = root, lease_ttl() if ttl_s is None else ttl_s
        self.renew_s = self.ttl_s * RENEW_SHARE if renew_s is None else renew_s
        self.key = (root / LEASE_NAME).key
        self.lost = threading.Event()
        self.holder_id = uuid.uuid4().hex
        self.epoch = 0
        self._etag: str | None = None
        self._renewed_at = 0.0  # time.monotonic() of the last write of the lease that succeeded
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        # A renewal that hangs must not use up the lease: each write gives up after a third of
        # the renewal interval, and a failed one is tried again a second later (_renew_until_stopped).
        self._client = s3_client(timeout_s=max(1.0, self.renew_s / 3))

    def _body(self) -> bytes:
        holder = {"holder_id": self.holder_id, "epoch": self.epoch, "pid": os.getpid(), "host": socket.gethostname(),
                  **process_identity(), "ttl_s": self.ttl_s,
                  "started_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")}  # fmt: skip
        return (json.dumps(holder) + "\n").encode()

    def valid(self) -> bool:
        """Whether this launch may still write: it holds the lease, and renewed it less than
        (1 - MARGIN_SHARE) x ttl_s ago (on this machine's monotonic clock, which a pause does not stop)."""
        return (self._etag is not None and not self.lost.is_set()
                and time.monotonic() - self._renewed_at < self.ttl_s * (1 - MARGIN_SHARE))  # fmt: skip

    def acquire(self) -> None:
        self.epoch = 1
        sent = time.monotonic()
        try:
            self._put_tried_again(IfNoneMatch="*")
        except Exception as exc:
            if not is_precondition_failure(exc):
                raise StorageError(f"cannot create the lease {self.root / LEASE_NAME}: {first_line(exc)}") from None
            current = read_lease(self.root)
            if self._adopt_if_own(current, sent):
                pass  # a try whose answer was lost had created it
            elif current is not None and current.live:
                raise LaunchLockedError(refusal(self.root, holder_of(current))) from None
            else:
                self._take_over(current)
        self._renewer = threading.Thread(target=self._renew_until_stopped, name="lease-renewer", daemon=True)
        self._renewer.start()

    def _take_over(self, current: Lease | None) -> None:
        """An expired lease (its launch was killed), or one deleted meanwhile: taken over, one epoch on."""
        sent = time.monotonic()
        try:
            if current is None:
                self._put_tried_again(IfNoneMatch="*")
            else:
                self.epoch = current.epoch + 1
                self._put_tried_again(IfMatch=current.etag)
        except Exception as again:
            if not is_precondition_failure(again):
                raise StorageError(f"cannot take over the lease {self.root / LEASE_NAME}: "
                                   f"{first_line(again)}") from None  # fmt: skip
            taker = read_lease(self.root)
            if self._adopt_if_own(taker, sent):
                return
            holder = holder_of(taker) if taker else LaunchHolder(None, None, None)
            raise LaunchLockedError(refusal(self.root, holder)) from None

    def _put_tried_again(self, **condition) -> None:
        """Acquiring's write, through the renewals' client (each request gives up after a third
        of the renewal interval, and boto does not retry it): sent up to ACQUIRE_TRIES times,
        RETRY_S apart, while it times out or finds the store unreachable, so that a slow store
        does not fail the launch. A try the store applied but whose answer was lost makes the
        next one a precondition failure, which is read back as this launch's own (`_adopt_if_own`)."""
        for attempt in range(ACQUIRE_TRIES):
            try:
                self._put(**condition)
                return
            except Exception as exc:
                if is_precondition_failure(exc) or not is_transient(exc) or attempt == ACQUIRE_TRIES - 1:
                    raise
                time.sleep(RETRY_S)

    def _put(self, **condition) -> None:
        started = time.monotonic()  # the lease is good for ttl_s from when the write was sent
        self._etag = self._client.put_object(Bucket=self.root.bucket, Key=self.key, Body=self._body(),
                                             **condition)["ETag"]  # fmt: skip
        self._renewed_at = started

    def _renew_until_stopped(self) -> None:
        wait = self.renew_s
        while not self._stop.wait(wait):
            if not self.valid():  # paused or cut off past the margin: another launch may hold it now
                self.lost.set()
                return
            self.epoch += 1
            try:
                self._put(IfMatch=self._etag)
                wait = self.renew_s
            except Exception as exc:
                if is_precondition_failure(exc) and not self._own_write_landed():
                    self.lost.set()  # taken over: this launch's view of the run is stale
                    return
                # A network error or a timeout: try again soon, until valid() says it is too late.
                wait = RETRY_S

    def _own_write_landed(self) -> bool:
        """After an If-Match failure: whether the lease now holds a renewal of this very launch
        whose answer was lost (timed out after the store applied it). Then its ETag is adopted,
        and the next renewal, a second later, succeeds; otherwise another launch took it over."""
        try:
            current = read_lease(self.root)
        except Exception:  # noqa: BLE001 - unreadable now: judged at the next try
            return True
        return self._adopt_if_own(current)

    def _adopt_if_own(self, current: Lease | None, sent_at: float | None = None) -> bool:
        """Whether the stored lease is a write of this very launch whose answer was lost; if so,
        its ETag is adopted. A renewal's leaves the clock at the last confirmed write; one of
        acquire()'s counts from `sent_at`, when its first try was sent: the earliest it can have
        been written."""
        if current is None or current.holder.get("holder_id") != self.holder_id:
            return False
        self._etag = current.etag
        if sent_at is not None:
            self._renewed_at = sent_at
        return True

    def release(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join(timeout=10)
        if self._etag is not None and not self.lost.is_set():
            current = read_lease(self.root)
            if current is not None and current.etag == self._etag:  # never another launch's lease
                self._client.delete_object(Bucket=self.root.bucket, Key=self.key)
            self._etag = None


def holder_of(lease: Lease):
    h = lease.holder
    return LaunchHolder(h.get("pid"), h.get("host"), h.get("started_at"), lease_age_s=lease.age_s,
                        lease_ttl_s=lease.ttl_s, lease_holder_exited=lease.holder_exited)  # fmt: skip
