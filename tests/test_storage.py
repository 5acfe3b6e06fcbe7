"""The storage layer on local disk and on a real S3 server (moto's, on 127.0.0.1): whole-file
writes, listings, versioned checkpoints with a pointer, the launch lease, and one-line errors
for bad URIs, missing buckets and missing credentials."""
from __future__ import annotations

import threading
import time

import boto3
import pytest

from manifests.locks.holder import LaunchLockedError
from manifests.locks.launch_lock import launch_holder, live_launch, lock_for
from manifests.locks.lease import LEASE_NAME, S3Lease, process_identity
from manifests.run_dir import RunDir, training_states
from manifests.storage import LocalLocation, ObjectLocation, StorageError, location
from tests.helpers import S3_BUCKET
from tests.helpers import assert_one_line_error, invoke, planned_run


@pytest.fixture(params=["local", "s3"])
def folder(request, tmp_path):
    if request.param == "local":
        return location(tmp_path / "folder")
    return location(request.getfixturevalue("s3_prefix") + "/folder")


def test_a_location_reads_writes_lists_moves_and_deletes_the_same_on_disk_and_on_s3(folder):
    a = folder / "sub" / "a.bin"
    assert not a.exists() and not folder.exists()
    a.write_bytes(b"one")
    assert a.read_bytes() == b"one" and a.is_file() and not a.is_dir() and (folder / "sub").is_dir()
    a.write_with(lambda tmp: open(tmp, "wb").write(b"two"))  # filled locally, placed whole
    assert a.read_bytes() == b"two"
    with a.reading() as local:
        assert open(local, "rb").read() == b"two"
    (folder / "sub" / "b.txt").write_text("bee")
    listed = {e.name: e for e in (folder / "sub").list()}
    assert set(listed) == {"a.bin", "b.txt"} and not listed["a.bin"].is_dir
    assert [e.name for e in folder.list() if e.is_dir] == ["sub"]
    a.move(folder / "c.bin")
    assert not a.exists() and (folder / "c.bin").read_bytes() == b"two"
    (folder / "c.bin").unlink()
    (folder / "c.bin").unlink()  # missing: nothing to do
    assert not (folder / "c.bin").exists()
    assert folder.path_to(str(folder / "sub" / "b.txt")) == "sub/b.txt"
    assert str(folder / "x") == str(folder) + "/x" and (folder / "x").parent == folder


def test_local_paths_and_file_uris_stay_local_and_s3_uris_keep_their_text(tmp_path, s3_prefix):
    assert isinstance(location(tmp_path), LocalLocation) and location(tmp_path).path == tmp_path
    assert location(f"file://{tmp_path}").path == tmp_path
    assert isinstance(location("runs/x"), LocalLocation)
    remote = location(s3_prefix + "/run/")
    assert isinstance(remote, ObjectLocation) and str(remote) == s3_prefix + "/run"
    assert remote.bucket == S3_BUCKET and str(remote / "manifest.parquet") == s3_prefix + "/run/manifest.parquet"


@pytest.mark.parametrize("uri, fragments", [
    ("s3://key:secret@bucket/run", ("credentials in the URI are refused", "AWS_ACCESS_KEY_ID")),
    ("s3://bucket/run?endpoint_override=x", ("s3://bucket/run?...: options in the URI are not accepted", "AWS_ENDPOINT_URL")),
    ("s3://bucket/run?secret_key=secret", ("s3://bucket/run?...: options in the URI are not accepted",)),
    ("s3://bucket/run#secret", ("s3://bucket/run?...: options in the URI are not accepted",)),
    ("nosuchfs://bucket/run", ("cannot open nosuchfs://bucket/run", "Unrecognized filesystem")),
])  # fmt: skip
def test_a_bad_uri_is_refused_in_one_line_without_the_secret(uri, fragments):
    with pytest.raises(StorageError) as refused:
        location(uri)
    for fragment in fragments:
        assert fragment in str(refused.value)
    assert "secret" not in str(refused.value).replace("secret@", "") and "key:" not in str(refused.value)


def test_data_with_credentials_is_refused_without_printing_them(tmp_path):
    """`--data` names the URI in its message too: without its user:password@ (issue 21)."""
    result = invoke("launch", "--data", "s3://AKIAKEY:SECRETXYZ@bucket/x", "--run", tmp_path / "run")
    assert_one_line_error(result, "--data s3://bucket/x:", "credentials in the URI are refused")
    assert "SECRETXYZ" not in result.output and "AKIAKEY" not in result.output
    assert not (tmp_path / "run").exists()


def test_versions_on_s3_are_new_keys_named_by_a_pointer_and_the_rest_is_pruned(s3_prefix):
    split = location(s3_prefix + "/splits/041")
    states = training_states(split)
    assert states.versions() == []
    for step in (1, 2, 3):
        states.write(lambda tmp, step=step: open(tmp, "wb").write(b"state %d" % step), tag=f"{step:08d}")
    newest, previous = states.versions()
    assert newest.read_bytes() == b"state 3" and previous.read_bytes() == b"state 2"
    assert newest.name.startswith("state-00000003-") and newest.name.endswith(".pt")
    assert sorted(e.name for e in split.list()) == sorted([newest.name, previous.name, "state.json"])

    # A kill after an upload but before the pointer moved: the upload is unnamed, never read,
    # and the next write removes it.
    orphan = split / "state-00000004-deadbeef.pt"
    orphan.write_bytes(b"torn? never read")
    assert [v.read_bytes() for v in states.versions()] == [b"state 3", b"state 2"]
    states.write(lambda tmp: open(tmp, "wb").write(b"state 5"), tag="00000005")
    assert [v.read_bytes() for v in states.versions()] == [b"state 5", b"state 3"] and not orphan.exists()

    states.discard_newest(keep_as=split / "state.bad.pt")  # resume found it unusable
    assert [v.read_bytes() for v in states.versions()] == [b"state 3"]
    assert (split / "state.bad.pt").read_bytes() == b"state 5"
    states.remove_all()
    assert states.versions() == [] and not (split / "state.json").exists()


def test_versions_on_disk_are_the_two_files_renamed_into_place(tmp_path):
    states = training_states(tmp_path / "split")
    for step in (1, 2, 3):
        states.write(lambda tmp, step=step: open(tmp, "wb").write(b"s%d" % step), tag=str(step))
    assert [v.name for v in states.versions()] == ["state.pt", "state.prev.pt"]
    assert [v.read_bytes() for v in states.versions()] == [b"s3", b"s2"]


def test_the_s3_lease_lets_one_launch_in_refuses_a_second_and_is_released(s3_prefix):
    root = location(s3_prefix + "/run")
    first = lock_for(root)
    assert isinstance(first, S3Lease)
    first.acquire()
    try:
        holder = live_launch(root)
        assert holder.pid is not None and holder.live and holder.lease_ttl_s == 30
        with pytest.raises(LaunchLockedError, match=rf"pid {holder.pid} on .* is running {root}"):
            lock_for(root).acquire()
    finally:
        first.release()
    assert launch_holder(root) is None and not (root / LEASE_NAME).exists()


def test_of_two_launches_racing_for_a_lease_exactly_one_wins(s3_prefix):
    root = location(s3_prefix + "/run")
    leases, outcomes, go = [S3Lease(root) for _ in range(4)], [], threading.Barrier(4)

    def race(lease):
        go.wait()
        try:
            lease.acquire()
            outcomes.append("won")
        except LaunchLockedError:
            outcomes.append("refused")

    threads = [threading.Thread(target=race, args=(lease,)) for lease in leases]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(outcomes) == ["refused", "refused", "refused", "won"]
    for lease in leases:
        lease.release()


def test_a_lease_is_renewed_while_held_and_taken_over_only_once_expired(s3_prefix, monkeypatch):
    root = location(s3_prefix + "/run")
    held = S3Lease(root, ttl_s=2.0, renew_s=0.3)
    held.acquire()
    time.sleep(3.0)  # longer than the ttl: only renewals keep it live
    assert live_launch(root) is not None
    with pytest.raises(LaunchLockedError):
        S3Lease(root, ttl_s=2.0).acquire()

    held._stop.set()  # its launch hangs or is cut off: no more renewals
    held._renewer.join()
    # The holder must look like another host's process, or its own pid (alive) would still
    # count; expiry is judged by the store's clock alone.
    boto3.client("s3").put_object(Bucket=root.bucket, Key=(root / LEASE_NAME).key,
                                  Body=b'{"pid": 1, "host": "elsewhere", "ttl_s": 2.0}')  # fmt: skip
    time.sleep(2.5)
    expired = launch_holder(root)
    assert expired.host == "elsewhere" and not expired.live and "expired (ttl 2 s)" in expired.lease_text()
    taker = S3Lease(root)
    taker.acquire()  # takes the expired lease over
    assert launch_holder(root).host != "elsewhere"

    held._stop.clear()  # the old holder comes back: its next renewal finds the lease taken
    held.renew_s = 0.01
    runner = threading.Thread(target=held._renew_until_stopped)
    runner.start()
    runner.join(10)
    assert held.lost.is_set()
    taker.release()


def test_a_lease_whose_holder_exited_on_this_host_is_over_at_once(s3_prefix):
    import os
    import socket
    import subprocess
    import sys

    root = location(s3_prefix + "/run")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    # As a launch in this pid namespace writes it (its process start time no longer matters).
    pid_ns = process_identity()["pid_ns"]
    boto3.client("s3").put_object(Bucket=root.bucket, Key=(root / LEASE_NAME).key,
                                  Body=f'{{"pid": {pid}, "host": "{socket.gethostname()}", "pid_ns": {pid_ns}, '
                                       f'"proc_start": 1, "ttl_s": 30}}')  # fmt: skip
    holder = launch_holder(root)
    assert holder.lease_holder_exited and not holder.live and "its process has exited" in holder.lease_text()
    assert live_launch(root) is None
    lease = S3Lease(root)
    lease.acquire()
    assert live_launch(root).pid == os.getpid()
    lease.release()


def test_bad_run_uris_missing_buckets_and_credentials_get_one_line_before_a_cluster_starts(s3_prefix, monkeypatch,
                                                                                           tmp_path):  # fmt: skip
    quick = ["--splits", "2", "--steps", "2"]
    assert_one_line_error(invoke("launch", "--run", "s3://no-such-bucket/run", *quick),
                          "bucket no-such-bucket of s3://no-such-bucket/run does not exist")  # fmt: skip
    assert_one_line_error(invoke("status", "--run", "s3://no-such-bucket/run"), "bucket no-such-bucket")
    assert_one_line_error(invoke("status", "--run", s3_prefix + "/none"), f"run directory {s3_prefix}/none does not exist")
    assert_one_line_error(invoke("sample", "--label", "1", "--run", s3_prefix + "/none"), "does not exist")
    assert_one_line_error(invoke("launch", "--run", "gopher://x/run", *quick), "cannot open gopher://x/run")
    assert_one_line_error(invoke("launch", "--run", s3_prefix + "/run", "--data", s3_prefix + "/no-images", *quick),
                          f"data folder {s3_prefix}/no-images does not exist")  # fmt: skip
    assert_one_line_error(invoke("launch", "--run", s3_prefix + "/run", "--data", "cifar10:" + s3_prefix, *quick),
                          "is read from a local folder only")  # fmt: skip
    assert not location(s3_prefix + "/run").exists()  # nothing written by any of them

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    assert_one_line_error(invoke("status", "--run", s3_prefix + "/run"), "no AWS credentials found",
                          "AWS_ACCESS_KEY_ID")  # fmt: skip


def test_an_unreachable_endpoint_is_one_line_in_bounded_time(monkeypatch, s3_server):
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")  # the discard port: nothing listens
    start = time.monotonic()
    result = invoke("status", "--run", f"s3://{S3_BUCKET}/elsewhere-{time.time_ns()}")
    assert_one_line_error(result, "cannot reach s3://", "check AWS_ENDPOINT_URL")
    assert time.monotonic() - start < 60


def test_readers_of_an_s3_run_see_a_whole_manifest_while_it_is_rewritten(s3_prefix):
    """Each read is one GET: pyarrow's reader (a HEAD for the size, then ranged GETs) read a
    manifest replaced in between as the new one cut at the old one's length."""
    run = planned_run(s3_prefix + "/run", splits=10)
    records = run.read_manifest()
    stop, seen, errors = threading.Event(), set(), []

    def read():
        reader = RunDir(s3_prefix + "/run")
        while not stop.is_set():
            try:
                seen.add(tuple(r.step for r in reader.read_manifest()))
            except Exception as exc:  # any torn read fails the test
                errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for t in threads:
        t.start()
    for version in range(1, 120):
        for r in records:
            r.step = version
        records[0].warning = "w" * (version % 7 * 500)  # versions of different sizes
        run.write_manifest(records)
    stop.set()
    for t in threads:
        t.join(30)
    assert not errors, errors[:3]
    assert all(len(set(steps)) == 1 for steps in seen) and len(seen) > 5  # whole versions only


def test_a_store_without_conditional_writes_is_said_so_in_one_line_and_not_guarded(capsys):
    """pyarrow's in-memory mock:// store stands for gs://, hdfs:// and the like: no lease there."""
    from manifests.locks.launch_lock import Unguarded

    root = location("mock://bucket/run")
    guard = lock_for(root)
    assert isinstance(guard, Unguarded)
    guard.acquire()
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("warning: mock:// offers no conditional write") and str(root) in lines[0]
    assert "run one launch at a time" in lines[0] and launch_holder(root) is None
    guard.release()


def test_a_run_under_a_symlink_to_another_depth_stores_paths_that_read_back(tmp_path):
    """Workers write under the run's resolved path; the manifest's paths must be relative to
    the run as the user named it, so that sample, serve and evaluate find the files."""
    target = tmp_path / "disks" / "fast" / "runs" / "x"
    (target / "splits" / "001").mkdir(parents=True)
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "runs").symlink_to(tmp_path / "disks" / "fast" / "runs")
    run = RunDir(tmp_path / "home" / "runs" / "x")
    written = run.split_dir(1).absolute() / "generator.safetensors"  # as a worker reports it
    written.write_bytes(b"weights")
    stored = run.relative(str(written))
    assert stored == "splits/001/generator.safetensors" and (run.root / stored).read_bytes() == b"weights"
