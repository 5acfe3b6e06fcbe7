"""`ensemble launch --address` on a multi-node cluster that it did not start, with the run on
the test session's S3 server: splits spread over the nodes, other processes read the run, and
a coordinator killed there is cleaned up by Ray and resumed by the next launch."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from manifests.tables.manifest import Status

pytestmark = pytest.mark.faults  # a cluster of its own and a killed coordinator: slower

STEPS = 1200
CHECKPOINT_EVERY = 300


def test_an_attached_multi_node_cluster_trains_an_s3_run_and_a_killed_coordinator_resumes(s3_prefix, tmp_path):
    script = Path(__file__).with_name("scenarios") / "attached_cluster.py"
    out = subprocess.run([sys.executable, str(script), s3_prefix + "/run", str(STEPS), str(CHECKPOINT_EVERY),
                          str(tmp_path)], capture_output=True, text=True, timeout=900,
                         cwd=Path(__file__).parents[1])  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"\nattached cluster: {seen}")

    assert set(seen["splits_by_node"].values()) == {0, 1}, seen  # both worker nodes trained splits
    assert seen["succeeded"] == 4 and "label 7 (" in seen["sample"] and "-> split 0, local class 7" in seen["sample"]

    # The killed coordinator: Ray ended its split tasks, the cluster stayed up, status told the truth.
    assert seen["cluster_alive_after_kill"]
    between = seen["between"]
    assert between["launch"] is None and between["expired_lease"]["lease_holder_exited"] and 4 in between["interrupted"]
    # The relaunch resumed from the newest checkpoint in S3, redoing less than one interval.
    assert seen["resumed_from"] == seen["newest_checkpoint"] >= CHECKPOINT_EVERY
    assert 0 <= seen["steps_redone"] < CHECKPOINT_EVERY and seen["after"] == [Status.SUCCEEDED, Status.SUCCEEDED]
    assert seen["attempts"] == [2, 2]
