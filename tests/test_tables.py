"""Every table a run writes carries its schema version, reads files of each older version in
today's columns, and refuses a newer one in one line (manifests/tables/). The manifest's
versions are tested in test_manifest.py."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.tables.evaluation import EVALUATION_SCHEMA, read_evaluation, write_evaluation
from manifests.tables.history import GUARD_METRICS, HISTORY_SCHEMA, METRICS, RENAMED, read_history, write_history
from manifests.tables.parquet import VERSION_KEY, TableError

pytestmark = pytest.mark.unit

HISTORY_ROW = [10, 1.0, 2.0, 0.5, 0.25, 0.6, 0.4, 1.5, 0.9, 0.7, 0.63]
"""step, the six METRICS, train_seconds, the three GUARD_METRICS."""


def _history_as_version(table: pa.Table, version: int) -> pa.Table:
    """A history as release `version` wrote it: no version in the metadata, its own columns."""
    old_names = {new: old for old, new in RENAMED.items()}
    if version < 3:
        table = table.rename_columns([old_names.get(n, n) for n in table.column_names])
    if version < 2:
        table = table.drop_columns(list(GUARD_METRICS))
    return table.replace_schema_metadata({})


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_history_of_each_earlier_version_reads_in_todays_columns(tmp_path, version):
    write_history(tmp_path, 3, [HISTORY_ROW])
    path = tmp_path / "history.parquet"
    assert pq.read_schema(path).metadata[VERSION_KEY] == b"3"
    pq.write_table(_history_as_version(pq.read_table(path), version), path)

    (row,) = read_history(tmp_path)
    assert list(row) == HISTORY_SCHEMA.names == ["split", "step", *METRICS, "train_seconds", *GUARD_METRICS]
    assert (row["split"], row["step"], row["class_accuracy"], row["class_accuracy_fake"]) == (3, 10, 0.5, 0.25)
    guard = [row[name] for name in GUARD_METRICS]
    assert guard == ([None] * 3 if version == 1 else [0.9, 0.7, 0.63])  # version 1 had no guard


def test_a_history_rewritten_after_an_upgrade_carries_todays_version(tmp_path):
    write_history(tmp_path, 3, [HISTORY_ROW[:8] + [math.nan] * 3])
    path = tmp_path / "history.parquet"
    pq.write_table(_history_as_version(pq.read_table(path), 1), path)
    rows = read_history(tmp_path)
    write_history(tmp_path, 3, [[r[n] for n in HISTORY_SCHEMA.names[1:]] for r in rows])
    assert pq.read_schema(path).metadata[VERSION_KEY] == b"3" and read_history(tmp_path) == rows


def evaluation_row(label: int, split: int, verdict: str = "ok", **extra) -> dict:
    return {"label": label, "name": f"class {label}", "class_id": f"n{label:08d}", "split": split,
            "checkpoint": "best", "checkpoint_step": 400, "samples": 100, "accuracy": 1.0, "real_accuracy": 1.0,
            "ms_ssim": 0.8, "real_ms_ssim": 0.8, "diversity": 0.9, "fid": None, "split_fid": 2.0, "split_kid": 0.03,
            "novelty": 1.2, "imagenet_accuracy": None, "verdict": verdict, **extra}  # fmt: skip


def test_an_evaluation_of_version_1_reads_with_class_ids_unknown_and_merges_with_new_rows(tmp_path):
    """Version 1 (no version recorded, no class_id): `status` and a later `evaluate --only`
    read it; the rows it had keep their values, the new ones have class ids."""
    old = [evaluation_row(410, 41), evaluation_row(411, 41, "collapsed"), evaluation_row(420, 42)]
    v1_schema = pa.schema([f for f in EVALUATION_SCHEMA if f.name not in ("class_id", "distinctness")])
    v1_rows = [{k: v for k, v in row.items() if k not in ("class_id", "distinctness")} for row in old]
    pq.write_table(pa.Table.from_pylist(v1_rows, schema=v1_schema), tmp_path / "evaluation.parquet")

    read = read_evaluation(tmp_path)
    assert [(r["class_id"], r["distinctness"]) for r in read] == [(None, None)] * 3  # versions 2 and 3 added them
    assert [{k: v for k, v in r.items() if k not in ("class_id", "distinctness")} for r in read] == v1_rows

    write_evaluation(tmp_path, [evaluation_row(420, 42, "low-accuracy")])  # `evaluate --only 42` now
    after = read_evaluation(tmp_path)
    assert [(r["label"], r["class_id"], r["verdict"]) for r in after] == [
        (410, None, "ok"), (411, None, "collapsed"), (420, "n00000420", "low-accuracy")]  # fmt: skip
    assert pq.read_schema(tmp_path / "evaluation.parquet").metadata[VERSION_KEY] == b"3"


@pytest.mark.parametrize("table", ["history", "evaluation"])
def test_a_table_of_a_newer_version_is_refused_in_one_line(tmp_path, table):
    if table == "history":
        write_history(tmp_path, 3, [HISTORY_ROW])
    else:
        write_evaluation(tmp_path, [evaluation_row(410, 41)])
    path = tmp_path / f"{table}.parquet"
    pq.write_table(pq.read_table(path).replace_schema_metadata({VERSION_KEY: b"7"}), path)
    read = read_history if table == "history" else read_evaluation
    with pytest.raises(TableError) as error:
        read(tmp_path)
    assert "schema version 7, newer than this acgan-ensemble reads" in str(error.value)
    assert "upgrade acgan-ensemble" in str(error.value) and "\n" not in str(error.value)


def test_an_unreadable_evaluation_says_what_to_do(tmp_path):
    (tmp_path / "evaluation.parquet").write_bytes(b"PAR1 not parquet")
    with pytest.raises(TableError, match="evaluation table .* is unreadable .*; delete it and run `ensemble evaluate`"):
        read_evaluation(tmp_path)


def test_a_table_whose_columns_do_not_match_its_version_is_refused(tmp_path):
    """Right names, wrong type (a hand-edited file): one line, not rows of the wrong kind."""
    write_evaluation(tmp_path, [evaluation_row(410, 41)])
    path = tmp_path / "evaluation.parquet"
    table = pq.read_table(path)
    table = table.set_column(table.schema.get_field_index("label"), "label", pa.array(["410"]))
    pq.write_table(table, path)
    with pytest.raises(TableError, match="of other names or types than its version 3 has; delete it"):
        read_evaluation(tmp_path)


CONCURRENT_WRITER = """
import sys
from tests.test_tables import evaluation_row
from manifests.tables.evaluation import write_evaluation
run, writer = sys.argv[1], int(sys.argv[2])
for round in range(20):  # a split of its own each time: a write lost to another is never repaired
    split = writer * 100 + round
    write_evaluation(run, [evaluation_row(split * 10 + k, split) for k in range(2)])
"""


@pytest.mark.parametrize("where", ["local", "s3"])
def test_evaluates_of_different_splits_at_once_keep_every_row(tmp_path, request, where):
    """`evaluate --only 0-49` and `--only 50-99` at once: each write merges with what the other wrote."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    run = str(tmp_path) if where == "local" else request.getfixturevalue("s3_prefix") + "/run"
    writers = [subprocess.Popen([sys.executable, "-c", CONCURRENT_WRITER, run, str(writer)],
                                cwd=Path(__file__).parents[1], env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[1])})
               for writer in (1, 2, 3)]  # fmt: skip
    assert [w.wait(timeout=120) for w in writers] == [0, 0, 0]
    splits = {row["split"] for row in read_evaluation(run)}
    assert splits == {writer * 100 + round for writer in (1, 2, 3) for round in range(20)}


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="counts threads through Linux's /proc")
def test_reading_a_table_starts_no_thread_that_exit_could_tear_down(tmp_path):
    # In a fresh process: this one's Arrow pool may already run. A pool thread alive at exit
    # can abort a short command like `ensemble status` (manifests/tables/parquet.py).
    write_history(tmp_path, 0, [HISTORY_ROW] * 50)
    code = ("import os; from manifests.tables.history import read_history; "
            "before = len(os.listdir('/proc/self/task')); read_history(%r); "
            "print(len(os.listdir('/proc/self/task')) - before)") % str(tmp_path)
    started = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert started.stdout.strip() == "0"
