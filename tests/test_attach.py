"""`ensemble launch --address` (and RAY_ADDRESS) on a cluster this launch did not start:
a head started with `ray start --head --block`, as a user or `ray up` starts one, on private
ports and its own temp dir, stopped by its pid (never `ray stop`, which kills every Ray
process on the machine). The launch attaches, trains there, leaves the cluster running,
and a relaunch through RAY_ADDRESS resumes the run."""
from __future__ import annotations

import contextlib
import json
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

from bench.command import installed_command
from manifests.tables.manifest import Status
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


@contextlib.contextmanager
def started_head(dashboard_port: int | None = None):
    """A one-node Ray cluster in its own process group; yields (GCS address, process).
    With `dashboard_port` it also serves the dashboard (and so the job server) on 127.0.0.1."""
    temp_dir = tempfile.mkdtemp(prefix="rh-", dir="/tmp")  # short: Ray's socket paths must fit 107 bytes
    ports = free_ports(8)
    gcs, manager, objects, agent, agent_grpc, env_agent, metrics, client = ports
    taken = ports + ([dashboard_port] if dashboard_port else [])
    # Workers take ports from [low, low + 100]: a range that holds none of the ports above.
    low = next(p for p in (free_ports(1)[0] for _ in range(100)) if not any(p <= q <= p + 100 for q in taken))
    bin_dir = Path(sys.executable).parent
    dashboard = (["--include-dashboard", "true", "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard_port)]
                 if dashboard_port else ["--include-dashboard", "false"])  # fmt: skip
    head = subprocess.Popen(
        [str(bin_dir / "ray"), "start", "--head", "--block", "--num-cpus", "2", "--num-gpus", "0", *dashboard,
         "--disable-usage-stats", "--temp-dir", temp_dir, "--node-ip-address", "127.0.0.1",
         "--port", str(gcs), "--node-manager-port", str(manager), "--object-manager-port", str(objects),
         "--dashboard-agent-listen-port", str(agent), "--dashboard-agent-grpc-port", str(agent_grpc),
         "--runtime-env-agent-port", str(env_agent), "--metrics-export-port", str(metrics),
         "--ray-client-server-port", str(client),
         "--min-worker-port", str(low), "--max-worker-port", str(low + 100)],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, start_new_session=True,
        # As a user starts it: token auth off, the project's virtual environment on PATH (so a
        # submitted job's `ensemble ...` entrypoint is found).
        env={**os.environ, "RAY_AUTH_MODE": "disabled", "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"},
    )  # fmt: skip
    address = f"127.0.0.1:{gcs}"

    def listening(port):
        assert head.poll() is None, f"ray start --head exited: {head.stderr.read()[-2000:]}"
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    try:
        wait_for(lambda: listening(gcs), timeout=120, what="the Ray head to listen")
        if dashboard_port:
            wait_for(lambda: listening(dashboard_port), timeout=120, what="the Ray dashboard to listen")
        yield address, head
    finally:
        try:
            os.killpg(head.pid, signal.SIGTERM)  # the head and the processes it started, nothing else
            head.wait(timeout=10)  # a drain can take 30 s; what is left is killed below
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=30)
        except ProcessLookupError:
            pass  # it had exited (the check above says why)
        shutil.rmtree(temp_dir, ignore_errors=True)
        # `ray start` also names its cluster in /tmp/ray/ray_current_cluster, whatever --temp-dir
        # says; left there, a later bare ray.init() would try to attach to the stopped head.
        current = Path("/tmp/ray/ray_current_cluster")
        if current.is_file() and current.read_text().strip().endswith(f":{gcs}"):
            current.unlink()


@pytest.fixture(scope="module")
def ray_head():
    """One head for the module, with its job server: (GCS address, process, dashboard port).
    Shared, because a head takes 10-30 s to start and to drain."""
    (dashboard_port,) = free_ports(1)
    with started_head(dashboard_port=dashboard_port) as (address, head):
        yield address, head, dashboard_port


def test_launch_attaches_to_an_existing_cluster_by_address_and_by_ray_address(tmp_path, ray_head):
    address, head, _ = ray_head
    run = tmp_path / "run"
    quick = ["--steps", "6", "--batch-size", "4", "--checkpoint-every", "3", "--no-guard", "--run", str(run)]
    # The shell of the user who started the head: token auth off like the head's. A test run
    # that started the session's in-process cluster before carries ray.init's RAY_AUTH_MODE=token,
    # and a driver with it never got its progress board created on this head (the fault-test loop).
    shell = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    first = subprocess.run([*installed_command(), "launch", "--splits", "100", "--only", "4", "--address", address,
                            *quick], capture_output=True, text=True, timeout=300, cwd=tmp_path, env=shell)  # fmt: skip
    assert first.returncode == 0, first.stderr[-3000:]
    port = address.rsplit(":", 1)[1]
    assert re.search(rf"on the Ray cluster at \S+:{port} ", " ".join(first.stderr.split())), first.stderr  # attached
    assert rows_of(run)[4].status == Status.SUCCEEDED
    assert head.poll() is None  # the user's cluster outlives the launch

    env = {**shell, "RAY_ADDRESS": address}
    second = subprocess.run([*installed_command(), "launch", "--only", "5", "--run", str(run)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path, env=env)  # fmt: skip
    assert second.returncode == 0, second.stderr[-3000:]
    assert re.search(rf"on the Ray cluster at \S+:{port} ", " ".join(second.stderr.split())), second.stderr
    rows = rows_of(run)
    assert rows[5].status == Status.SUCCEEDED and rows[4].status == Status.SUCCEEDED
    assert head.poll() is None


def test_a_driver_whose_token_auth_the_cluster_lacks_is_refused_before_the_run_is_written(tmp_path, ray_head):
    """With RAY_AUTH_MODE=token in the shell, ray.init attaches to a head started without auth,
    but every actor the driver makes is cancelled: the launch used to die with a traceback
    from its progress board, after writing the run's manifest."""
    address, head, _ = ray_head
    run = tmp_path / "run"
    done = subprocess.run([*installed_command(), "launch", "--splits", "100", "--only", "4", "--address", address,
                           "--steps", "6", "--no-guard", "--run", str(run)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path, env={**os.environ, "RAY_AUTH_MODE": "token"})  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert re.search(r"^Error: the Ray cluster at \S+ accepted this driver but did not start its actor .*"
                     r"RAY_AUTH_MODE=token is set in this shell", done.stderr, re.M), done.stderr[-3000:]
    assert not run.exists()  # refused before the run was written
    assert head.poll() is None


def test_ray_job_submit_runs_a_launch_with_the_run_on_s3(s3_prefix, tmp_path, ray_head):
    """The way many clusters take work: `ray job submit --working-dir . -- ensemble launch ...`
    through the head's job server. The job's driver attaches through RAY_ADDRESS (set by Ray),
    ships the packages to the workers, and writes the run to S3, where this process reads it."""
    run = s3_prefix + "/run"
    address, head, dashboard_port = ray_head
    repo = Path(__file__).parents[1]
    ray = str(Path(sys.executable).with_name("ray"))
    job = subprocess.run(
        [ray, "job", "submit", "--address", f"http://127.0.0.1:{dashboard_port}", "--working-dir", ".",
         "--submission-id", "acgan-test-job", "--",
         "ensemble", "launch", "--splits", "100", "--only", "3,7", "--steps", "6", "--batch-size", "4",
         "--checkpoint-every", "3", "--no-guard", "--run", run],
        capture_output=True, text=True, timeout=600, cwd=repo, env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )  # fmt: skip
    logs = job.stdout + job.stderr
    assert job.returncode == 0, logs[-4000:]
    assert "Job 'acgan-test-job' succeeded" in logs, logs[-4000:]
    flat = " ".join(logs.split())
    print(f"\nray job submit's output:\n{job.stdout[-3000:]}")
    # The job's driver attached to this head (through the RAY_ADDRESS Ray gives it), not to
    # a cluster of its own, and its summary came back through the job's log stream.
    assert re.search(rf"on the Ray cluster at \S+:{address.rsplit(':', 1)[1]} ", flat), logs[-4000:]
    assert "2 succeeded" in flat, logs[-4000:]
    assert head.poll() is None  # the cluster outlives the job

    # The run is on S3, read by another process with no cluster: both splits trained.
    status = subprocess.run([*installed_command(), "status", "--run", run, "--json"],
                            capture_output=True, text=True, timeout=120, cwd=tmp_path)  # fmt: skip
    assert status.returncode == 0, status.stderr
    rows = {row["split"]: row for row in json.loads(status.stdout)["splits"]}
    assert rows[3]["status"] == Status.SUCCEEDED and rows[7]["status"] == Status.SUCCEEDED
    assert rows[3]["step"] == 6
