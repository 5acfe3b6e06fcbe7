"""Faults injected into real runs: killed workers, a killed coordinator, Ctrl-C, a removed
node, a split that raises, two launches at once. Nothing finished may be redone, and nothing
unfinished may lose more than one checkpoint interval.

Each run trains long enough (STEPS at batch BATCH, ~8 s a split on an idle core) that the fault lands
mid-training, after a checkpoint (one every CHECKPOINT_EVERY steps, ~2 s). The proof that
no more than one interval is lost: the resumed attempt starts from exactly the newest
checkpoint on disk at the fault (`resumed_from`); a restart from scratch would start at 0.

The kills and Ctrl-C run twice: with the run on local disk, and on the session's S3 server
(`run_at`), where checkpoints are uploads named by a pointer and the launch guard is a lease.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch

from ensemble.launching.coordinator import LaunchRequest, launch
from ensemble.launching.listener import QuietListener
from ensemble.run_spec import new_spec
from manifests.locks.launch_lock import LaunchLock
from manifests.run_dir import RunDir, training_states
from manifests.tables.manifest import Status
from bench.command import installed_command
from tests.helpers import (
    assert_one_line_error,
    invoke,
    join_or_fail,
    planned_run,
    process_alive,
    rows_of,
    wait_for,
)

STEPS = 1200  # a fault lands after the first checkpoint (300) and well before STEPS - CHECKPOINT_EVERY
CHECKPOINT_EVERY = 300
BATCH = 4  # the steps, not the images, make the windows a fault lands in; 4 trains them ~40% faster than 8
LONG = ["--steps", str(STEPS), "--batch-size", str(BATCH), "--checkpoint-every", str(CHECKPOINT_EVERY), "--no-guard"]

pytestmark = pytest.mark.faults


def mid_training(run: Path, split: int):
    """The split's row once it is past a checkpoint, well before its end: the first progress
    report after its first checkpoint, or its second checkpoint (on a machine fast enough
    that every report falls on a checkpoint). Events in the manifest, no time windows."""
    def past_a_checkpoint():
        row = rows_of(run).get(split)
        if not (row and row.status == Status.RUNNING and row.pid and (row.checkpoint_step or 0) >= CHECKPOINT_EVERY):
            return None
        return row if row.step > row.checkpoint_step or row.checkpoint_step >= 2 * CHECKPOINT_EVERY else None

    row = wait_for(past_a_checkpoint, timeout=120, what=f"split {split} to train past a checkpoint")
    assert row.step < STEPS - CHECKPOINT_EVERY, f"too late to inject a fault mid-training: {row.step} of {STEPS} steps"
    return row


def checkpoint_on_disk(run, split: int) -> int:
    """The step of the split's newest training state in its storage (read once its worker is
    dead); 0 for a split killed before its first checkpoint."""
    from workers.checkpoints import load_training_state

    loaded = load_training_state(RunDir(run).split_dir(split))
    assert loaded is None or loaded.newest, loaded and loaded.warning  # a kill never tears the newest
    return int(loaded.state["step"]) if loaded else 0


def assert_resumed(row, attempts: int, from_step: int, reached: int) -> None:
    """Succeeded, after `attempts` attempts, the last of them resumed from the newest checkpoint
    there was when the fault struck; the steps counted as redone are those between that
    checkpoint and the step the split was seen to reach (`reached`: the manifest's step at
    the fault; its last report may have been later), and less than one checkpoint interval."""
    assert (row.status, row.step, row.attempt) == (Status.SUCCEEDED, STEPS, attempts), row
    assert row.resumed_from == from_step >= CHECKPOINT_EVERY, (row.resumed_from, from_step)
    assert max(0, reached - from_step) <= row.steps_redone < CHECKPOINT_EVERY, (row.steps_redone, reached, from_step)


@pytest.mark.usefixtures("ray_cluster")
def test_a_killed_worker_is_retried_and_resumes_from_its_checkpoint(run_at):
    run = run_at
    request = LaunchRequest(run_dir=run, splits=100, only=(41,), steps=STEPS, batch_size=BATCH,
                            checkpoint_every=CHECKPOINT_EVERY, gpus_per_split=0, guard=False)  # fmt: skip
    outcome = {}
    coordinator = threading.Thread(target=lambda: outcome.update(summary=launch(request, QuietListener())))
    coordinator.start()
    victim = mid_training(run, 41)
    os.kill(victim.pid, signal.SIGKILL)
    wait_for(lambda: not process_alive(victim.pid), timeout=10, what="the worker to die")
    newest = checkpoint_on_disk(run, 41)  # the retry needs seconds to start and 300 steps to checkpoint
    join_or_fail(coordinator, 300, "the launch after its worker was killed")

    row = rows_of(run)[41]
    assert outcome["summary"].counts["succeeded"] == 1
    assert_resumed(row, attempts=2, from_step=newest, reached=victim.step)
    assert row.pid != victim.pid and row.error is None
    print(f"\nworker SIGKILL ({storage_of(run)}): resumed from step {newest}, steps redone {row.steps_redone}")


@pytest.mark.usefixtures("ray_cluster")
def test_a_worker_that_dies_on_every_attempt_fails_after_a_bounded_number(tmp_path):
    run = tmp_path / "run"
    request = LaunchRequest(run_dir=run, splits=100, only=(41,), steps=STEPS, batch_size=BATCH, max_retries=1,
                            checkpoint_every=CHECKPOINT_EVERY, gpus_per_split=0, guard=False)  # fmt: skip
    outcome = {}
    coordinator = threading.Thread(target=lambda: outcome.update(summary=launch(request, QuietListener())))
    coordinator.start()
    killed = set()
    for attempt in (1, 2):  # max_retries=1: two attempts, each killed
        row = wait_for(lambda: (r := rows_of(run).get(41)) and r.attempt == attempt and r.pid not in killed and r,
                       timeout=120, what=f"attempt {attempt} to start")  # fmt: skip
        os.kill(row.pid, signal.SIGKILL)
        killed.add(row.pid)
    join_or_fail(coordinator, 120, "the launch whose worker died on every attempt")

    row = rows_of(run)[41]
    assert outcome["summary"].counts["failed"] == 1
    assert (row.status, row.attempt) == (Status.FAILED, 2)
    assert "the worker died on all 2 attempt(s)" in row.error and "relaunch to resume" in row.error


def storage_of(run) -> str:
    return "s3" if str(run).startswith("s3://") else "local"


def start_launch(run, only: str) -> subprocess.Popen:
    """`ensemble launch` as a user runs it: its own process (group) and private Ray cluster."""
    return subprocess.Popen([*installed_command(), "launch", "--splits", "100", "--only", only, "--run", str(run), *LONG],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip


def stop_group(process: subprocess.Popen) -> None:
    """Ray leaves two agents behind when its driver is SIGKILLed; take the whole group down."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait(timeout=30)


@pytest.mark.usefixtures("ray_cluster")
def test_a_killed_coordinator_loses_nothing_and_the_next_launch_resumes(run_at):
    run = run_at
    coordinator = start_launch(run, "0-3")
    try:
        first = wait_for(lambda: next((r for r in rows_of(run).values() if r.status == Status.SUCCEEDED), None),
                         timeout=180, what="a split to succeed")  # fmt: skip
        victim = mid_training(run, 2)

        # While it runs: a second launch is refused, and status names the live launch.
        assert_one_line_error(invoke("launch", "--run", run), "another `ensemble launch`",
                              f"pid {coordinator.pid}", "wait for it to end")  # fmt: skip
        live = json.loads(invoke("status", "--run", run, "--json").output)
        assert live["launch"]["pid"] == coordinator.pid and live["counts"]["running"] >= 1

        coordinator.send_signal(signal.SIGKILL)
        coordinator.wait(timeout=30)
        workers = [r.pid for r in rows_of(run).values() if r.status == Status.RUNNING]
        wait_for(lambda: not any(map(process_alive, workers)) or None, timeout=60, what="orphan workers to exit")
    finally:
        stop_group(coordinator)

    before = rows_of(run)
    newest = {s: checkpoint_on_disk(run, s) for s, r in before.items() if r.status == Status.RUNNING}
    # Between the two launches the manifest still says `running` (its writer died), but
    # no launch holds the lock, so status shows those splits as interrupted.
    between = json.loads(invoke("status", "--run", run, "--json").output)
    assert between["launch"] is None and between["counts"]["running"] == 0
    if storage_of(run) == "s3":  # the lease it could not release, over since its holder exited
        assert between["expired_lease"]["pid"] == coordinator.pid and between["expired_lease"]["lease_holder_exited"]
    interrupted = [s["split"] for s in between["splits"] if s["status"] == Status.INTERRUPTED]
    assert victim.split in interrupted
    assert all(before[s].status == Status.RUNNING for s in interrupted)

    relaunch = invoke("launch", "--run", run, "--only", "0-3", "--gpus-per-split", "0")
    assert relaunch.exit_code == 0, relaunch.output
    after = rows_of(run)
    assert after[first.split] == before[first.split]  # not retrained, not rewritten
    assert newest[victim.split] >= CHECKPOINT_EVERY
    for split in interrupted:  # the relaunch counts from the manifest's steps: exactly
        if newest[split]:
            assert_resumed(after[split], attempts=2, from_step=newest[split], reached=before[split].step)
        else:  # it started after split 2 and had not checkpointed: from scratch, less than an interval lost
            row = after[split]
            assert (row.status, row.step, row.attempt, row.resumed_from) == (Status.SUCCEEDED, STEPS, 2, 0), row
            assert before[split].step < CHECKPOINT_EVERY
        assert after[split].steps_redone == max(0, before[split].step - newest[split])
    assert all(after[s].status == Status.SUCCEEDED for s in range(4))
    print(f"\ncoordinator SIGKILL ({storage_of(run)}): {len(interrupted)} split(s) resumed from steps {[newest[s] for s in interrupted]}, "
          f"steps redone {[after[s].steps_redone for s in interrupted]}, succeeded splits retrained: 0")  # fmt: skip


@pytest.mark.usefixtures("ray_cluster")
@pytest.mark.parametrize("run_at, how", [("local", "ctrl-c"), ("local", "sigterm"), ("s3", "ctrl-c")],
                         indirect=["run_at"])  # fmt: skip
def test_ctrl_c_or_sigterm_stops_the_jobs_writes_the_manifest_and_the_next_launch_resumes(run_at, how):
    run = run_at
    coordinator = start_launch(run, "5,6")
    try:
        victim = mid_training(run, 5)
        if how == "ctrl-c":
            os.killpg(coordinator.pid, signal.SIGINT)  # what a terminal sends: the whole process group
        else:
            coordinator.send_signal(signal.SIGTERM)  # what `kill` or a scheduler sends: the process
        _, stderr = coordinator.communicate(timeout=60)
    finally:
        stop_group(coordinator)
    assert coordinator.returncode == 130, stderr
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert last.startswith("Error: interrupted") and "ensemble launch --run" in last and "Traceback" not in stderr
    stopped = rows_of(run)
    assert stopped[5].status == Status.INTERRUPTED and not process_alive(victim.pid)
    newest = checkpoint_on_disk(run, 5)

    relaunch = invoke("launch", "--run", run, "--only", "5,6", "--gpus-per-split", "0")
    assert relaunch.exit_code == 0, relaunch.output
    resumed = rows_of(run)[5]
    assert_resumed(resumed, attempts=2, from_step=newest, reached=stopped[5].step)
    assert resumed.steps_redone == stopped[5].step - newest  # the relaunch counts from the manifest: exactly
    print(f"\n{how} ({storage_of(run)}): resumed from step {newest}, steps redone {rows_of(run)[5].steps_redone}")


@pytest.mark.usefixtures("ray_cluster")
def test_a_launch_paused_past_its_lease_is_fenced_out_by_the_launch_that_takes_over(s3_prefix, monkeypatch):
    """Kleppmann's scenario: the holder is frozen (SIGSTOP) past its ttl, a second launch takes
    the run over, then the first wakes up (SIGCONT). It must write nothing more: the second
    launch, whose manifest writes are conditional on its own last version, would fail if it
    did. Its workers, still training, cannot move the splits' checkpoint pointers either."""
    from manifests.locks.lease import read_lease
    from manifests.storage import location

    run, ttl = s3_prefix + "/run", 6.0
    monkeypatch.setenv("ACGAN_LEASE_TTL_S", str(ttl))  # both launches: the frozen one (a process) and the taker
    frozen = start_launch(run, "0,1")
    taker, outcome = None, {}
    try:
        mid_training(run, 0)
        os.kill(frozen.pid, signal.SIGSTOP)
        time.sleep(ttl + 1.0)  # its lease expires on the store's clock; it cannot know
        taker = threading.Thread(target=lambda: outcome.update(
            result=invoke("launch", "--run", run, "--only", "0,1", "--gpus-per-split", "0")))  # fmt: skip
        taker.start()
        # The take-over itself, not a row's state, which a split the frozen launch's workers
        # finished meanwhile may skip: the second launch (this process) holds the lease now.
        wait_for(lambda: (lease := read_lease(location(run))) and lease.holder.get("pid") == os.getpid() or None,
                 timeout=120, what="the second launch to take the lease over")  # fmt: skip
        os.kill(frozen.pid, signal.SIGCONT)
        _, stderr = frozen.communicate(timeout=60)
        join_or_fail(taker, 300, "the launch that took over")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(frozen.pid, signal.SIGCONT)
        stop_group(frozen)
    last = [line for line in stderr.splitlines() if line.strip()][-1]
    assert frozen.returncode == 1 and "lost its lease" in last and "Traceback" not in stderr, stderr[-2000:]
    assert outcome["result"].exit_code == 0, outcome["result"].output
    rows = rows_of(run)
    assert all((rows[s].status, rows[s].step) == (Status.SUCCEEDED, STEPS) for s in (0, 1)), rows
    assert rows[0].resumed_from >= CHECKPOINT_EVERY  # resumed, not retrained from scratch
    for split in (0, 1):
        named = training_states(RunDir(run).split_dir(split)).named()
        assert named and all(version.exists() for version in named)  # no pointer names a missing key


def test_a_removed_node_s_splits_finish_on_the_remaining_nodes(tmp_path):
    """A three-node cluster on this machine (its own Ray, so in a subprocess)."""
    script = Path(__file__).with_name("scenarios") / "remove_node.py"
    out = subprocess.run([sys.executable, str(script), str(tmp_path / "run"), str(STEPS), str(CHECKPOINT_EVERY)],
                         capture_output=True, text=True, timeout=400, cwd=Path(__file__).parents[1])  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    rows = rows_of(tmp_path / "run")
    assert all(rows[s].status == Status.SUCCEEDED and rows[s].step == STEPS for s in range(4)), rows
    victim = rows[result["victim_split"]]
    assert_resumed(victim, attempts=2, from_step=result["newest_checkpoint"], reached=result["victim_step"])
    assert victim.pid != result["victim_pid"]
    print(f"\nnode removed: split {victim.split} resumed from step {victim.resumed_from}, "
          f"steps redone {victim.steps_redone}")


@pytest.mark.usefixtures("ray_cluster")
def test_a_split_that_raises_fails_once_while_the_others_finish_and_a_later_launch_retries(tmp_path, image_folder):
    class_2 = sorted((image_folder / "class_2").iterdir())
    originals = {f: f.read_bytes() for f in class_2}
    for f in class_2:
        f.write_bytes(b"not an image")  # passes the launch-time layout check, fails to decode
    run = tmp_path / "run"
    quick = ["--steps", "12", "--batch-size", "8", "--checkpoint-every", "6", "--gpus-per-split", "0", "--no-guard"]
    result = invoke("launch", "--data", image_folder, "--splits", "2", "--run", run, *quick)
    assert result.exit_code == 1
    assert "split 1 failed" in result.output and "1 succeeded, 1 failed" in result.output
    rows = rows_of(run)
    assert rows[0].status == Status.SUCCEEDED
    assert (rows[1].status, rows[1].attempt) == (Status.FAILED, 1)  # an error repeats: not retried in-launch
    assert "DatasetError: no readable images" in rows[1].error

    for f, data in originals.items():
        f.write_bytes(data)
    # The relaunch lists the folder again, says what changed, and trains on it only when told to.
    refused = invoke("launch", "--run", run, "--gpus-per-split", "0")
    assert_one_line_error(refused, f"{len(class_2)} file(s) changed in 1 class folder(s) (class_2)", "--reindex")
    assert rows_of(run) == rows
    retried = invoke("launch", "--run", run, "--gpus-per-split", "0", "--reindex")
    assert retried.exit_code == 0, retried.output
    again = rows_of(run)
    assert (again[1].status, again[1].attempt, again[1].error) == (Status.SUCCEEDED, 2, None)
    assert again[0] == rows[0]


def test_a_second_launch_on_a_run_is_refused(tmp_path):
    run = tmp_path / "run"
    planned_run(run).write_spec(new_spec(data=None, splits=100, num_classes=1000, steps=10, batch_size=8, seed=0,
                                         checkpoint_every=5).to_dict())  # fmt: skip
    before = RunDir(run).manifest_path.read_bytes()
    with LaunchLock(run):  # held as a running coordinator holds it
        assert_one_line_error(invoke("launch", "--run", run), "another `ensemble launch`", f"pid {os.getpid()}")
        status = invoke("status", "--run", run, "--summary")
        assert f"launch running (pid {os.getpid()}" in status.output
    assert RunDir(run).manifest_path.read_bytes() == before
    assert "launch running" not in invoke("status", "--run", run, "--summary").output


@pytest.mark.usefixtures("ray_cluster")
def test_a_corrupt_checkpoint_falls_back_to_the_previous_one_and_the_manifest_says_so(tmp_path):
    import dataclasses

    from ensemble.launching.tasks import job_for
    from ensemble.run_spec import RunSpec
    from workers.train import train_split

    run = tmp_path / "run"
    quick = ["--steps", "12", "--batch-size", "8", "--checkpoint-every", "4", "--gpus-per-split", "0", "--no-guard"]
    assert invoke("launch", "--splits", "100", "--only", "41", "--run", run, *quick).exit_code == 0
    # Split 43 as an interrupted attempt leaves it: checkpoints at steps 4 and 8.
    spec = RunSpec.from_dict(json.loads((run / "run.json").read_text()))
    job = dataclasses.replace(job_for(spec, rows_of(run)[43], RunDir(run)), steps=8)
    torch.set_num_threads(1)
    train_split(job, device=torch.device("cpu"))
    state = RunDir(run).split_dir(43) / "state.pt"
    state.write_bytes(state.read_bytes()[:3000])

    result = invoke("launch", "--run", run, "--only", "43", "--gpus-per-split", "0")
    assert result.exit_code == 0, result.output
    row = rows_of(run)[43]
    assert (row.status, row.step, row.resumed_from) == (Status.SUCCEEDED, 12, 4)
    assert "state.pt is unreadable" in row.warning and "resumed from state.prev.pt at step 4" in row.warning
    assert "resumed from state.prev.pt" in invoke("status", "--run", run).output
