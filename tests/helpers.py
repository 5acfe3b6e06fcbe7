"""Small helpers shared by the tests."""
from __future__ import annotations

import time
from pathlib import Path

from click.testing import CliRunner

import cli
from ensemble.planning import plan_splits
from manifests.run_dir import RunDir
from manifests.schema import SplitRecord
from workers.datasets.builtin import CLASS_NAMES


def invoke(*args: str):
    return CliRunner().invoke(cli.main, [str(a) for a in args], prog_name="ensemble")


def records_for(plan: list[list[int]], total_steps: int = 10) -> list[SplitRecord]:
    """Manifest rows for a split plan over the built-in classes, nothing trained yet."""
    return [SplitRecord(split=i, classes=c, class_names=[CLASS_NAMES[x] for x in c], total_steps=total_steps)
            for i, c in enumerate(plan)]  # fmt: skip


def planned_run(root, splits: int = 100) -> RunDir:
    """A run directory (run.json and manifest) planned over the built-in data, nothing trained yet."""
    from ensemble.run_spec import new_spec

    run = RunDir(root)
    run.write_spec(new_spec(data=None, splits=splits, num_classes=1000, steps=None, batch_size=None, seed=None,
                            checkpoint_every=None).to_dict())  # fmt: skip
    run.write_manifest(records_for(plan_splits(1000, splits), total_steps=10))
    return run


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def rows_of(run_dir) -> dict:
    """{split: SplitRecord} of a run's manifest as it is on disk now ({} before the first write)."""
    run = RunDir(run_dir)
    return {r.split: r for r in run.read_manifest()} if run.exists() else {}


def wait_for(check, timeout: float, what: str, interval: float = 0.05):
    """Poll `check` until it returns something truthy, and return that."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def join_or_fail(thread, timeout: float, what: str) -> None:
    """Join a thread that runs a launch; a launch still running after `timeout` fails the
    test with a clear message instead of letting it go on to assert on a half-done run."""
    thread.join(timeout)
    assert not thread.is_alive(), f"{what} still running after {timeout} s: the launch hangs"


def process_alive(pid: int) -> bool:
    """True for a live process; False for a gone or zombie one (dead, not yet reaped)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False


class RunsCode:
    """Unpickling this would run a shell command that leaves a marker file: what a malicious
    checkpoint carries. Loading must refuse it without running it."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return (os.system, (f"touch {self.marker}",))
