"""`ensemble status --watch`: redrawn while a launch holds the run, ended by itself once none
does, or by Ctrl-C; exit 0 either way; no torch or Ray imported."""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from bench.command import installed_command
from ensemble.status.watch import CLEAR, watch_status
from manifests.locks.launch_lock import LaunchLock
from tests.helpers import invoke, planned_run, wait_for

SUMMARY = "100 splits: 100 pending; 0% of steps done"


def test_watch_of_a_run_nobody_launches_draws_once_and_ends(tmp_path):
    planned_run(tmp_path / "run")
    result = invoke("status", "--run", tmp_path / "run", "--watch", "--interval", "0.2")
    assert result.exit_code == 0, result.output
    assert result.output.count(SUMMARY) == 1 and "410-419" in result.output

    as_json = invoke("status", "--run", tmp_path / "run", "--watch", "--json")
    assert as_json.exit_code == 0 and json.loads(as_json.output)["counts"]["pending"] == 100  # one object per line


def test_watch_redraws_in_place_while_a_launch_holds_the_run(tmp_path):
    run = planned_run(tmp_path / "run")
    lock = LaunchLock(run.root.path)
    lock.acquire()  # what a running launch holds
    threading.Timer(1.0, lock.release).start()
    out = io.StringIO()
    started = time.monotonic()
    code = watch_status(str(tmp_path / "run"), 0.2, lambda status: status.summary_line(), in_place=True, out=out)
    assert code == 0 and time.monotonic() - started < 10
    frames = out.getvalue().split(CLEAR)[1:]
    assert len(frames) >= 3, out.getvalue()  # redrawn every 0.2 s for about a second
    assert "launch running (pid" in frames[0] and f"ensemble status --run {tmp_path / 'run'}" in frames[0]
    assert "launch running" not in frames[-1] and frames[-1].rstrip().endswith(SUMMARY)


WATCH = """
import sys
import cli
sys.argv = ["ensemble", "status", "--watch", "--interval", "0.5", "--run", sys.argv[1]]
try:
    cli.main()
finally:
    print("imported:", sorted(m for m in ("torch", "ray", "torchvision") if m in sys.modules), flush=True)
"""


@pytest.mark.usefixtures("ray_cluster")  # keeps the suite's cluster count down: the launch below starts its own
def test_watch_follows_a_real_launch_to_its_end_and_ctrl_c_stops_it(tmp_path):
    run = tmp_path / "run"
    launch = subprocess.Popen([*installed_command(), "launch", "--splits", "100", "--only", "41", "--run", str(run),
                               "--steps", "400", "--batch-size", "8", "--checkpoint-every", "100", "--no-guard"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=tmp_path)  # fmt: skip
    try:
        wait_for(lambda: (run / "manifest.parquet").is_file() or launch.poll() is not None, timeout=120,
                 what="the launch to write its manifest")  # fmt: skip
        watchers = [subprocess.Popen([sys.executable, "-c", WATCH, str(run)], stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True) for _ in range(2)]  # fmt: skip
        time.sleep(2.0)
        watchers[1].send_signal(signal.SIGINT)  # Ctrl-C
        stopped_out, stopped_err = watchers[1].communicate(timeout=60)
        assert watchers[1].returncode == 0, stopped_err[-2000:]
        followed_out, followed_err = watchers[0].communicate(timeout=600)
        assert watchers[0].returncode == 0, followed_err[-2000:]
        assert launch.wait(timeout=120) == 0, launch.stderr.read()[-2000:]
    finally:
        if launch.poll() is None:
            os.kill(launch.pid, signal.SIGINT)
            launch.wait(timeout=120)

    for out in (stopped_out, followed_out):
        assert "imported: []" in out  # neither torch nor Ray
        assert "Traceback" not in out
    summaries = [line for line in followed_out.splitlines() if line.startswith("100 splits:")]
    assert len(summaries) >= 3, followed_out  # a block per refresh (stdout is a pipe), not redrawn in place
    assert CLEAR not in followed_out
    assert any("launch running (pid" in line for line in summaries[:-1])
    # It ended by itself, on the first refresh with no launch and nothing running.
    assert "1 succeeded" in summaries[-1] and "launch running" not in summaries[-1]
    assert len([line for line in stopped_out.splitlines() if line.startswith("100 splits:")]) >= 2
