"""Small helpers shared by the CLI tests."""
from __future__ import annotations

from click.testing import CliRunner

import cli
from ensemble.planning import plan_splits
from manifests.run_dir import RunDir
from manifests.schema import SplitRecord
from workers.datasets.builtin import CLASS_NAMES


def invoke(*args: str):
    return CliRunner().invoke(cli.main, [str(a) for a in args])


def records_for(plan: list[list[int]], total_steps: int = 10) -> list[SplitRecord]:
    """Manifest rows for a split plan over the built-in classes, nothing trained yet."""
    return [SplitRecord(split=i, classes=c, class_names=[CLASS_NAMES[x] for x in c], total_steps=total_steps)
            for i, c in enumerate(plan)]  # fmt: skip


def planned_run(root, splits: int = 100) -> RunDir:
    """A run directory whose manifest is planned but where nothing has trained yet."""
    run = RunDir(root)
    run.write_manifest(records_for(plan_splits(1000, splits)))
    return run


def assert_one_line_error(result, *fragments: str) -> None:
    assert result.exit_code != 0, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
