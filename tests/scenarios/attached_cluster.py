"""Scenario for test_cluster: `ensemble launch --address` against a multi-node cluster it did
not start, with the run on S3, as on a cluster whose nodes share no disk.

Runs in its own process because it needs its own Ray cluster: a head with no CPUs and two
one-CPU worker nodes, all on this machine (ray.cluster_utils.Cluster). Every `ensemble`
command is a process of its own, as a user on a login node would run it:

1. a launch of 4 splits: they train on both worker nodes (a split's worker process is a
   child of its node's raylet), and `ensemble status` and `ensemble sample` from other
   processes read the run from S3;
2. a launch (of a second run, with longer splits) killed with SIGKILL mid-training: Ray ends its job, killing its split tasks; the
   cluster stays up; `status` shows the splits interrupted and the lease its holder left;
   a relaunch resumes each split from its newest checkpoint.

    python tests/scenarios/attached_cluster.py S3_RUN_URI STEPS CHECKPOINT_EVERY
Prints one JSON line with what it saw.
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root, when run as a script

from ray.cluster_utils import Cluster

from bench.command import installed_command
from manifests.tables.manifest import Status
from tests.helpers import process_alive, rows_of, wait_for

QUICK_STEPS = 200


def parent_pid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except OSError:
        return None


def ensemble(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*installed_command(), *args], capture_output=True, text=True, timeout=600, **kwargs)


def main(run: str, steps: int, checkpoint_every: int) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    nodes = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    raylets = {node.all_processes["raylet"][0].process.pid: i for i, node in enumerate(nodes)}
    seen: dict = {}
    try:
        common = ["--address", cluster.address, "--gpus-per-split", "0", "--no-guard", "--batch-size", "4"]
        spread_over_nodes(run, raylets, common, seen)
        kill_and_resume(run + "-long", cluster, raylets, steps, checkpoint_every, common, seen)
        print(json.dumps(seen))
    finally:
        logging.disable(logging.CRITICAL)
        cluster.shutdown()


def spread_over_nodes(run: str, raylets: dict, common: list[str], seen: dict) -> None:
    """Four splits, two at a time (one CPU per node, one per split): on both nodes."""
    quick = subprocess.Popen([*installed_command(), "launch", "--splits", "100", "--only", "0-3", "--run", run,
                              "--steps", str(QUICK_STEPS), "--checkpoint-every", "100", *common],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    on_nodes: dict[int, int] = {}

    def note_nodes():
        for row in rows_of(run).values():
            if row.status == Status.RUNNING and row.pid and row.split not in on_nodes:
                node = raylets.get(parent_pid(row.pid))
                if node is not None:
                    on_nodes[row.split] = node
        return quick.poll() is not None

    wait_for(note_nodes, timeout=600, what="the first launch to end", interval=0.1)
    _, stderr = quick.communicate()
    assert quick.returncode == 0, stderr[-3000:]
    seen["splits_by_node"] = {str(s): n for s, n in sorted(on_nodes.items())}
    status = json.loads(ensemble("status", "--run", run, "--json").stdout)
    seen["succeeded"] = status["counts"]["succeeded"]
    sample = ensemble("sample", "--label", "7", "--run", run, "--out", os.path.join(sys.argv[4], "s.png"))
    seen["sample"] = sample.stdout.strip().splitlines()[0] if sample.returncode == 0 else sample.stderr


def kill_and_resume(run: str, cluster, raylets: dict, steps: int, checkpoint_every: int, common: list[str],
                    seen: dict) -> None:  # fmt: skip
    """A coordinator killed mid-training on the attached cluster (a run of longer splits), then
    a relaunch that resumes it."""
    long = subprocess.Popen([*installed_command(), "launch", "--splits", "100", "--only", "4,5", "--run", run,
                             "--steps", str(steps), "--checkpoint-every", str(checkpoint_every), *common],
                            stdout=subprocess.DEVNULL, stderr=open(os.path.join(sys.argv[4], "long.err"), "w"))  # fmt: skip

    def past_a_checkpoint():
        row = rows_of(run).get(4)
        return row if row and row.status == Status.RUNNING and row.pid and (row.checkpoint_step or 0) >= \
            checkpoint_every and row.step > row.checkpoint_step else None  # fmt: skip

    victim = wait_for(past_a_checkpoint, timeout=300, what="split 4 to train past a checkpoint")
    long.send_signal(signal.SIGKILL)
    long.wait(timeout=30)
    workers = [r.pid for r in rows_of(run).values() if r.status == Status.RUNNING]
    wait_for(lambda: not any(map(process_alive, workers)), timeout=120,
             what="Ray to end the dead driver's split tasks")  # fmt: skip
    seen["cluster_alive_after_kill"] = all(process_alive(pid) for pid in raylets)
    between = json.loads(ensemble("status", "--run", run, "--json").stdout)
    seen["between"] = {"launch": between["launch"], "expired_lease": between["expired_lease"],
                       "interrupted": [s["split"] for s in between["splits"] if s["status"] == "interrupted"]}  # fmt: skip
    from workers.checkpoints import load_training_state
    from manifests.run_dir import RunDir

    newest = load_training_state(RunDir(run).split_dir(4)).state["step"]
    relaunch = ensemble("launch", "--run", run, "--only", "4,5", "--address", cluster.address,
                        "--gpus-per-split", "0")  # fmt: skip
    assert relaunch.returncode == 0, relaunch.stderr[-3000:]
    after = rows_of(run)
    seen.update(victim_step=victim.step, newest_checkpoint=newest, resumed_from=after[4].resumed_from,
                steps_redone=after[4].steps_redone, after=[after[s].status for s in (4, 5)],
                attempts=[after[s].attempt for s in (4, 5)])  # fmt: skip


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
