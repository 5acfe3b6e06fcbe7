"""The launch lease is a fence, not a hint (issue 21), on a real S3 server (moto's, on
127.0.0.1): every renewal changes the lease, a holder that cannot renew stops writing before
its lease can expire, a launch that was taken over cannot overwrite the manifest, and an older
attempt of a split cannot move its checkpoint pointer once a newer one has claimed it."""
from __future__ import annotations

import os
import socket
import time

import boto3
import pytest

from manifests.locks.lease import LEASE_NAME, S3Lease, process_identity, read_lease
from manifests.run_dir import LaunchTakenOver, RunDir
from manifests.storage import is_precondition_failure, location
from manifests.storage.versioned import Superseded
from manifests.tables.manifest import Status
from tests.helpers import planned_run


class Held:
    """A launch guard that is still valid: for the manifest writers of two launches at once."""

    def valid(self) -> bool:
        return True


def test_every_renewal_changes_the_lease_so_a_take_over_of_a_stale_read_fails(s3_prefix):
    root = location(s3_prefix + "/run")
    held = S3Lease(root, ttl_s=2.0, renew_s=0.2)
    held.acquire()
    try:
        seen = read_lease(root)  # what a second launch reads while deciding to take over
        time.sleep(0.6)
        now = read_lease(root)
        assert now.etag != seen.etag and now.epoch > seen.epoch >= 1
        taker = S3Lease(root)
        taker.epoch = seen.epoch + 1
        with pytest.raises(Exception) as refused:
            taker._put(IfMatch=seen.etag)  # the take-over the old lease (same body each renewal) let through
        assert is_precondition_failure(refused.value)
        assert read_lease(root).holder["holder_id"] == held.holder_id
    finally:
        held.release()


def test_a_renewal_whose_answer_was_lost_is_not_taken_for_a_take_over(s3_prefix):
    """Renewals give up after a third of their interval (boto3's defaults, 60 s retried 4
    times, could outlast the lease) and are tried again a second later. A renewal the store
    applied but whose answer timed out leaves the lease with a new ETag: the retry's If-Match
    then fails, and the lease must read it back as its own, not as another launch's."""
    root = location(s3_prefix + "/run")
    lease = S3Lease(root, ttl_s=30.0, renew_s=60.0)  # renewed by hand below
    assert lease._client.meta.config.read_timeout == 20.0 and lease._client.meta.config.connect_timeout == 20.0
    lease.acquire()
    try:
        answered = lease._etag
        lease.epoch += 1
        lease._put(IfMatch=answered)  # applied by the store...
        lease._etag = answered  # ...but its answer never came back
        lease.epoch += 1
        with pytest.raises(Exception) as refused:
            lease._put(IfMatch=lease._etag)
        assert is_precondition_failure(refused.value)
        assert lease._own_write_landed() and lease._etag == read_lease(root).etag
        lease._put(IfMatch=lease._etag)  # the next renewal goes through
        taker = S3Lease(root)
        taker.epoch = lease.epoch + 1
        taker._put(IfMatch=lease._etag)  # a real take-over
        assert not lease._own_write_landed()
    finally:
        lease.release()
    assert read_lease(root).holder["holder_id"] == taker.holder_id  # release never deletes another's lease


@pytest.mark.parametrize("lost", ["the answer", "the request"])
def test_acquiring_tries_a_timed_out_write_again_and_knows_its_own_lease(s3_prefix, monkeypatch, lost):
    """The lease is created through the renewals' client (3.3 s, no retries of its own). A
    timeout used to fail the launch, and one whose write had landed left a live lease that
    refused this launch's relaunch for a ttl; now it is tried again, and a landed try is
    read back as this launch's own."""
    from botocore.exceptions import ReadTimeoutError

    root = location(s3_prefix + "/run")
    lease = S3Lease(root, ttl_s=30.0, renew_s=60.0)
    put = S3Lease._put

    def times_out_once(self, **condition):
        monkeypatch.setattr(S3Lease, "_put", put)
        if lost == "the answer":
            put(self, **condition)  # applied by the store, its answer never came back
        raise ReadTimeoutError(endpoint_url="http://127.0.0.1")

    monkeypatch.setattr(S3Lease, "_put", times_out_once)
    lease.acquire()
    try:
        stored = read_lease(root)
        assert stored.holder["holder_id"] == lease.holder_id and lease._etag == stored.etag and lease.valid()
        lease.epoch += 1
        lease._put(IfMatch=lease._etag)  # renewals go on from the adopted ETag
    finally:
        lease.release()
    assert read_lease(root) is None  # released: the next launch need not wait out the ttl


def test_a_holder_that_cannot_renew_stops_writing_before_its_lease_can_expire(s3_prefix):
    root = location(s3_prefix + "/run")
    planned_run(root, splits=2)
    run = RunDir(root)
    records = run.read_manifest()
    lease = S3Lease(root, ttl_s=1.2, renew_s=60.0)  # its renewals never come (cut off, paused)
    lease.acquire()
    run.fence_with(lease)
    run.write_manifest(records)
    assert lease.valid()
    time.sleep(1.05)  # past 5/6 of the ttl: the store may soon call the lease expired
    assert not lease.valid()
    with pytest.raises(LaunchTakenOver, match="lost its lease .* it writes nothing more"):
        run.write_manifest(records)
    lease.release()


def test_a_launch_that_was_taken_over_cannot_overwrite_the_manifest(s3_prefix):
    root = location(s3_prefix + "/run")
    planned_run(root, splits=2)
    old, new = RunDir(root), RunDir(root)
    old_records, new_records = old.read_manifest(), new.read_manifest()
    old.fence_with(Held())
    new.fence_with(Held())
    new_records[0].status = Status.SUCCEEDED
    new.write_manifest(new_records)  # the launch that took over commits first
    with pytest.raises(LaunchTakenOver):
        old.write_manifest(old_records)  # the paused one wakes up with its stale rows
    assert RunDir(root).read_manifest()[0].status == Status.SUCCEEDED
    new.write_manifest(new_records)  # and the new one goes on writing over its own version


def test_a_manifest_write_interrupted_after_it_landed_is_not_taken_for_a_take_over(s3_prefix, monkeypatch):
    root = location(s3_prefix + "/run")
    planned_run(root, splits=2)
    run = RunDir(root)
    records = run.read_manifest()
    run.fence_with(Held())
    kind, write_if = type(run.manifest_path), type(run.manifest_path).write_if

    def lands_then_interrupted(self, data, etag):
        write_if(self, data, etag)
        monkeypatch.setattr(kind, "write_if", write_if)
        raise KeyboardInterrupt  # a Ctrl-C after the PUT landed, before its answer was kept

    monkeypatch.setattr(kind, "write_if", lands_then_interrupted)
    records[0].status = Status.RUNNING
    with pytest.raises(KeyboardInterrupt):
        run.write_manifest(records)
    records[0].status = Status.INTERRUPTED
    run.write_manifest(records)  # what the interrupted launch then records, over its own write
    assert RunDir(root).read_manifest()[0].status == Status.INTERRUPTED
    other = RunDir(root)  # while a version another launch wrote is still refused
    other.fence_with(Held())
    theirs = other.read_manifest()
    theirs[1].status = Status.SUCCEEDED
    other.write_manifest(theirs)
    with pytest.raises(LaunchTakenOver):
        run.write_manifest(records)


def test_an_older_attempt_of_a_split_cannot_move_its_pointer(s3_prefix):
    folder = location(s3_prefix) / "splits" / "007"
    fill = lambda step: (lambda tmp: open(tmp, "wb").write(b"state at %d" % step))  # noqa: E731
    older = folder.versioned("state.pt", "state.prev.pt", "state.json")
    older.claim()
    older.write(fill(100), tag="00000100")
    older.write(fill(200), tag="00000200")
    newer = folder.versioned("state.pt", "state.prev.pt", "state.json")  # a Ray retry, elsewhere
    newer.claim()
    with pytest.raises(Superseded):
        older.write(fill(300), tag="00000300")  # its upload lands, unnamed; the pointer does not move
    assert [v.read_bytes() for v in newer.versions()] == [b"state at 200", b"state at 100"]
    newer.write(fill(250), tag="00000250")
    named = {v.name for v in newer.named()}
    assert all(v.exists() for v in newer.named())
    assert {e.name for e in folder.list()} == named | {"state.json"}  # the older one's upload pruned
    assert [v.read_bytes() for v in newer.versions()] == [b"state at 250", b"state at 200"]


@pytest.mark.parametrize("cut_short_by", ["a lost answer", "an interrupt"])
def test_a_pointer_move_that_landed_unanswered_is_not_taken_for_a_newer_attempt(s3_prefix, monkeypatch, cut_short_by):
    folder = location(s3_prefix) / "splits" / "003"
    fill = lambda step: (lambda tmp: open(tmp, "wb").write(b"state at %d" % step))  # noqa: E731
    states = folder.versioned("state.pt", "state.prev.pt", "state.json")
    states.claim()
    states.write(fill(100), tag="00000100")
    kind, write_if = type(states.pointer), type(states.pointer).write_if

    def lands_unanswered(self, data, etag):
        write_if(self, data, etag)
        monkeypatch.setattr(kind, "write_if", write_if)
        if cut_short_by == "an interrupt":
            raise KeyboardInterrupt  # a Ctrl-C after the PUT landed, before its ETag was kept
        write_if(self, data, etag)  # boto's retry of a PUT whose answer was lost: refused, If-Match

    monkeypatch.setattr(kind, "write_if", lands_unanswered)
    if cut_short_by == "an interrupt":
        with pytest.raises(KeyboardInterrupt):
            states.write(fill(200), tag="00000200")
    else:
        states.write(fill(200), tag="00000200")  # done: the pointer stored is its own move
    states.write(fill(300), tag="00000300")  # and the next move goes over it
    assert [v.read_bytes() for v in states.versions()] == [b"state at 300", b"state at 200"]
    newer = folder.versioned("state.pt", "state.prev.pt", "state.json")  # while a newer attempt still fences it out
    newer.claim()
    with pytest.raises(Superseded):
        states.write(fill(400), tag="00000400")


def write_lease(root, **holder) -> None:
    import json

    boto3.client("s3").put_object(Bucket=root.bucket, Key=(root / LEASE_NAME).key, Body=json.dumps(holder).encode())


def test_a_holder_is_told_apart_by_more_than_host_and_pid(s3_prefix):
    root = location(s3_prefix + "/run")
    me = {"host": socket.gethostname(), "pid": os.getpid(), "ttl_s": 30}
    here = process_identity()
    write_lease(root, **me, pid_ns=here["pid_ns"] + 1, proc_start=here["proc_start"])  # another container
    assert read_lease(root).live
    write_lease(root, **me)  # a holder that did not say which namespace it ran in: its ttl decides
    assert read_lease(root).live
    write_lease(root, **me, pid_ns=here["pid_ns"], proc_start=here["proc_start"] + 1)  # the pid was reused
    assert not read_lease(root).live and read_lease(root).holder_exited
    write_lease(root, **me, **here)  # this very process
    assert read_lease(root).live
