"""`ensemble launch --address` (and RAY_ADDRESS) on a cluster this launch did not start:
a head started with `ray start --head --block`, as a user or `ray up` starts one, on private
ports and its own temp dir, stopped by its pid (never `ray stop`, which kills every Ray
process on the machine). The launch attaches, trains there, leaves the cluster running,
and a relaunch through RAY_ADDRESS resumes the run."""
from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from cli import installed_command
from manifests.schema import Status
from tests.helpers import rows_of, wait_for

pytestmark = pytest.mark.faults  # a cluster of its own, like the fault tests: slower


def free_ports(count: int) -> list[int]:
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


@pytest.fixture
def ray_head():
    """A one-node Ray cluster in its own process group; yields its GCS address."""
    temp_dir = tempfile.mkdtemp(prefix="rh-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ports = free_ports(7)
    gcs, manager, objects, agent, agent_grpc, env_agent, metrics = ports
    # Workers take ports from [low, low + 100]: a range that holds none of the ports above.
    low = next(p for p in (free_ports(1)[0] for _ in range(100)) if not any(p <= q <= p + 100 for q in ports))
    ray = str(Path(sys.executable).with_name("ray"))
    head = subprocess.Popen(
        [ray, "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", "0", "--include-dashboard", "false",
         "--disable-usage-stats", "--temp-dir", temp_dir, "--node-ip-address", "127.0.0.1",
         "--port", str(gcs), "--node-manager-port", str(manager), "--object-manager-port", str(objects),
         "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
         "--runtime-env-agent-port", str(env_agent), "--metrics-export-port", str(metrics),
         "--min-worker-port", str(low), "--max-worker-port", str(low + 100)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )  # fmt: skip
    address = f"127.0.0.1:{gcs}"

    def listening():
        assert head.poll() is None, f"ray start --head exited: {head.stderr.read()[-2000:]}"
        try:
            socket.create_connection(("127.0.0.1", gcs), timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_for(listening, timeout=120, what="the Ray head to listen")
        yield address, head
    finally:
        try:
            os.killpg(head.pid, signal.SIGTERM)  # the head and the processes it started, nothing else
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass  # it had exited (the check above says why)
        shutil.rmtree(temp_dir, ignore_errors=True)
        # `ray start` also names its cluster in /tmp/ray/ray_current_cluster, whatever --temp-dir
        # says; left there, a later bare ray.init() would try to attach to the stopped head.
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip().endswith(f":{gcs}"):
            current.unlink()


def test_launch_attaches_to_an_existing_cluster_by_address_and_by_ray_address(tmp_path, ray_head):
    address, head = ray_head
    run = tmp_path / "run"
    quick = ["--steps", "6", "--batch-size", "4", "--checkpoint-every", "3", "--no-guard", "--run", str(run)]
    first = subprocess.run([*installed_command(), "launch", "--splits", "100", "--only", "4", "--address", address,
                            *quick], capture_output=True, text=True, timeout=300, cwd=tmp_path)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    port = address.rsplit(":", 1)[1]
    assert re.search(rf"on the Ray cluster at \S+:{port} ", " ".join(first.stderr.split())), first.stderr  # attached
    assert rows_of(run)[4].status == Status.SUCCEEDED
    assert head.poll() is None  # the user's cluster outlives the launch

    env = {**os.environ, "RAY_ADDRESS": address}
    second = subprocess.run([*installed_command(), "launch", "--only", "5", "--run", str(run)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert re.search(rf"on the Ray cluster at \S+:{port} ", " ".join(second.stderr.split())), second.stderr
    rows = rows_of(run)
    assert rows[5].status == Status.SUCCEEDED and rows[4].status == Status.SUCCEEDED
    assert head.poll() is None
