import dataclasses
import datetime as dt
import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from manifests.run_dir import RunDir, RunDirError
from manifests.schema import MANIFEST_SCHEMA, SplitRecord, Status


def sample_records():
    now = dt.datetime(2026, 11, 22, 12, 30, 15, 123456, tzinfo=dt.timezone.utc)
    done = SplitRecord(split=0, classes=[0, 1], class_names=["a", "b"], status=Status.SUCCEEDED, attempt=2,
                       step=600, total_steps=600, loss_d=1.25, loss_g=0.5, class_accuracy=0.97,
                       checkpoint="splits/000/generator.safetensors", checkpoint_step=600, node="10.0.0.1",
                       device="cpu", train_seconds=7.5, started_at=now, updated_at=now, finished_at=now)  # fmt: skip
    fresh = SplitRecord(split=1, classes=[2, 3], class_names=["c", "d"], total_steps=600)
    return [done, fresh]


def test_record_fields_match_the_arrow_schema():
    assert [f.name for f in dataclasses.fields(SplitRecord)] == MANIFEST_SCHEMA.names


def test_manifest_round_trips_every_field_including_nulls(tmp_path):
    run = RunDir(tmp_path)
    records = sample_records()
    run.write_manifest(records)
    assert run.read_manifest() == records
    schema = pq.read_schema(run.manifest_path)
    assert schema.field("loss_d").type == MANIFEST_SCHEMA.field("loss_d").type  # all-null stays float64
    assert str(schema.field("started_at").type) == "timestamp[us, tz=UTC]"


def test_a_failed_write_leaves_the_old_manifest_and_no_temp_file(tmp_path, monkeypatch):
    run = RunDir(tmp_path)
    run.write_manifest(sample_records())
    before = run.manifest_path.read_bytes()
    broken = sample_records()
    broken[0].attempt = "not a number"  # Arrow refuses this row
    with pytest.raises(Exception):
        run.write_manifest(broken)

    def fail_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("manifests.run_dir.os.replace", fail_replace)
    with pytest.raises(OSError):
        run.write_manifest(sample_records())
    assert run.manifest_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.parquet"]


READER = """
import json, sys
from pathlib import Path
from manifests.run_dir import RunDir
run, stop = RunDir(sys.argv[1]), Path(sys.argv[2])
reads, errors = 0, []
while not stop.exists():
    try:
        rows = run.read_manifest()
        assert len(rows) == 2 and rows[1].error == "x" * rows[1].step, "rows from two versions"
        reads += 1
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"reads": reads, "errors": errors[:3], "error_count": len(errors)}))
"""


def test_readers_never_see_a_partial_manifest_during_1000_rewrites(tmp_path):
    """A reader process loops over the manifest while the writer replaces it 1000 times with
    files of changing size (each row's error grows with its step)."""
    run = RunDir(tmp_path / "run")
    records = sample_records()
    records[1].error = ""
    run.write_manifest(records)
    stop = tmp_path / "stop"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(run.root), str(stop)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])  # fmt: skip
    for step in range(1, 1001):
        records[1].step, records[1].error = step, "x" * step
        run.write_manifest(records)
    stop.touch()
    result = json.loads(reader.communicate(timeout=60)[0])
    assert result["error_count"] == 0, result["errors"]
    assert result["reads"] > 50, result
    assert run.read_manifest()[1].step == 1000


def test_foreign_or_corrupt_manifests_get_a_clear_error(tmp_path):
    run = RunDir(tmp_path)
    run.manifest_path.write_bytes(b"PAR1 not really parquet")
    with pytest.raises(RunDirError, match="unreadable"):
        run.read_manifest()
    import pyarrow as pa

    pq.write_table(pa.table({"split": [0]}), run.manifest_path)
    with pytest.raises(RunDirError, match="schema version"):
        run.read_manifest()


def test_missing_run_directories_say_what_to_do(tmp_path):
    with pytest.raises(RunDirError, match="does not exist; start one with `ensemble launch"):
        RunDir(tmp_path / "nope").read_manifest()
    with pytest.raises(RunDirError, match="not an ensemble run"):
        RunDir(tmp_path).read_manifest()


def test_rows_are_copies_that_writing_cannot_change():
    record = sample_records()[0]
    row = record.to_row()
    assert row == dataclasses.asdict(record)
    row["classes"].append(99)
    assert 99 not in record.classes
