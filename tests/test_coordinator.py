"""The coordinator's own paths on a real Ray cluster: a split whose training diverges, the
manifest write throttle, and a run created by another launch while this one started."""
from __future__ import annotations

import threading
import time

import pytest

from ensemble.launching import coordinator
from ensemble.launching.coordinator import LaunchRequest, launch
from ensemble.launching.drive import MANIFEST_WRITE_INTERVAL_S, Launch
from ensemble.launching.listener import QuietListener
from ensemble.errors import EnsembleError
from manifests.run_dir import RunDir
from manifests.tables.manifest import Status
from tests.helpers import invoke, planned_run, rows_of

pytestmark = pytest.mark.usefixtures("ray_cluster")


def test_a_split_whose_training_diverges_reaches_the_manifest_as_failed(tmp_path):
    run = tmp_path / "run"
    result = invoke("launch", "--splits", "100", "--only", "3", "--run", run, "--steps", "20", "--batch-size", "8",
                    "--checkpoint-every", "10", "--set", "lr=1e30", "--no-guard", "--gpus-per-split", "0")  # fmt: skip
    assert result.exit_code == 1, result.output
    assert "split 3 failed" in result.output and "1 failed" in result.output
    row = rows_of(run)[3]
    assert row.status == Status.FAILED and row.attempt == 1  # an error that repeats is not retried in-launch
    assert row.error.startswith("TrainingDiverged: split 3: non-finite loss at step"), row.error
    assert "1 failed" in invoke("status", "--run", run, "--summary").output


def test_progress_reports_reach_the_manifest_at_most_once_a_second(tmp_path, monkeypatch):
    """Reports far more often than MANIFEST_WRITE_INTERVAL_S: the manifest is rewritten at
    that interval (plus once when a task ends), and still ends with the latest report."""
    import ray

    from ensemble.launching.board import start_board

    run = planned_run(tmp_path / "run", splits=100)
    records = run.read_manifest()
    writes = []
    real_write = RunDir.write_manifest
    monkeypatch.setattr(RunDir, "write_manifest", lambda self, rows: (writes.append(time.monotonic()), real_write(self, rows)))

    @ray.remote(num_cpus=0)
    def works_then_fails(seconds):
        time.sleep(seconds)
        raise ValueError("done")

    board = start_board({})
    stop_reporting = threading.Event()
    sent = []

    def report():
        step = 0
        while not stop_reporting.is_set():
            step += 1
            ray.get(board.report.remote(7, {"step": step}))
            sent.append(step)
            time.sleep(0.01)

    reporter = threading.Thread(target=report)
    reporter.start()
    start = time.monotonic()
    flight = Launch(run, records, board, QuietListener(), submit=lambda record: works_then_fails.remote(4.0))
    flight.start([records[7]])
    try:
        flight.drive(threading.Event(), threading.Event())
    finally:
        stop_reporting.set()
        reporter.join(10)
    wall = time.monotonic() - start
    assert len(sent) > 4 * len(writes), (len(sent), len(writes))  # many more reports than writes
    assert 2 <= len(writes) <= wall / MANIFEST_WRITE_INTERVAL_S + 2, (len(writes), wall)
    gaps = [b - a for a, b in zip(writes, writes[1:-1])]  # the last write comes when the task ends
    assert all(g >= MANIFEST_WRITE_INTERVAL_S * 0.9 for g in gaps), gaps
    row = run.read_manifest()[7]
    assert row.status == Status.FAILED and row.step >= sent[len(sent) // 2]


def test_a_run_created_by_another_launch_meanwhile_is_not_overwritten(tmp_path, monkeypatch):
    """Two launches on a new --run: the second to take the lock finds the run the first made
    while its cluster was starting, refuses in one line, and leaves that run as it was."""
    run = tmp_path / "run"
    real_connect = coordinator.connect
    written = {}

    def connect_while_another_launch_creates_the_run(address):
        cluster = real_connect(address)
        planned_run(run)  # what the other launch wrote meanwhile
        written.update({p.name: p.read_bytes() for p in run.iterdir() if p.is_file()})
        return cluster

    monkeypatch.setattr(coordinator, "connect", connect_while_another_launch_creates_the_run)
    request = LaunchRequest(run_dir=run, splits=100, only=(0,), steps=4, batch_size=4, gpus_per_split=0, guard=False)
    with pytest.raises(EnsembleError, match="another launch created .* meanwhile; launch again to resume it"):
        launch(request, QuietListener())
    assert {"manifest.parquet", "run.json"} <= set(written)
    assert {name: (run / name).read_bytes() for name in written} == written  # the other launch's run, untouched
