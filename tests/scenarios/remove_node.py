"""Scenario for test_faults: a Ray node removed while it trains a split.

Runs in its own process because it needs its own Ray cluster: a head with no CPUs (the
coordinator and its progress board live there) and two one-CPU worker nodes, all on this
machine (ray.cluster_utils.Cluster). Once a split has checkpointed, the node running it is
removed without warning; the launch must finish every split on the remaining node.

    python tests/scenarios/remove_node.py RUN_DIR STEPS CHECKPOINT_EVERY
Prints one JSON line: {"victim_split": ..., "victim_pid": ..., "newest_checkpoint": ...}.
"""
from __future__ import annotations

import json
import logging
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the project root, when run as a script

import ray
from ray.cluster_utils import Cluster

from ensemble.launching.coordinator import LaunchRequest, launch
from ensemble.launching.listener import QuietListener
from manifests.tables.manifest import Status
from tests.helpers import join_or_fail, process_alive, rows_of, wait_for
from workers.state_format import load_state


def parent_pid(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def main(run: Path, steps: int, checkpoint_every: int) -> None:
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "include_dashboard": False})
    workers = [cluster.add_node(num_cpus=1) for _ in range(2)]
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, log_to_driver=False, logging_level=logging.ERROR)
    try:
        request = LaunchRequest(run_dir=run, splits=100, only=(0, 1, 2, 3), steps=steps, batch_size=4,
                                checkpoint_every=checkpoint_every, gpus_per_split=0, guard=False)  # fmt: skip
        errors: list[BaseException] = []

        def coordinate() -> None:
            try:
                launch(request, QuietListener())
            except BaseException as exc:  # reported below, in the main thread
                errors.append(exc)

        coordinator = threading.Thread(target=coordinate)
        coordinator.start()

        def past_a_checkpoint():
            """A running split after its first checkpoint: the first report past it, or its
            second checkpoint (where every report falls on one). An event, not a time window."""
            return next((r for r in rows_of(run).values() if r.status == Status.RUNNING and r.pid
                         and (r.checkpoint_step or 0) >= checkpoint_every
                         and (r.step > r.checkpoint_step or r.checkpoint_step >= 2 * checkpoint_every)), None)  # fmt: skip

        victim = wait_for(past_a_checkpoint, timeout=120, what="a split to train past a checkpoint")
        # A worker process is a child of its node's raylet: that tells which node runs it.
        raylets = {node.all_processes["raylet"][0].process.pid: node for node in workers}
        node = raylets[parent_pid(victim.pid)]
        cluster.remove_node(node, allow_graceful=False)
        # Its worker dies when it notices its raylet gone, and may write one more checkpoint
        # until then (found by the fault-test loop: read at 300, resumed from 600): the newest
        # checkpoint is the one on disk once it is dead.
        wait_for(lambda: not process_alive(victim.pid), timeout=60, what="the removed node's worker to die")
        state = load_state(str(Path(run) / "splits" / f"{victim.split:03d}" / "state.pt"))
        join_or_fail(coordinator, 300, "the launch after its node was removed")
        if errors:
            raise errors[0]
        print(json.dumps({"victim_split": victim.split, "victim_pid": victim.pid, "victim_step": victim.step,
                          "newest_checkpoint": state["step"]}))  # fmt: skip
    finally:
        ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
