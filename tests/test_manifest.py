import dataclasses
import datetime as dt
import json
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from manifests.run_dir import RunDir, RunDirError
from manifests.tables.manifest import MANIFEST_SCHEMA, SplitRecord, Status


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
    with pytest.raises(pa.ArrowInvalid, match="not a number"):
        run.write_manifest(broken)

    def fail_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr("manifests.storage.atomic_files.os.replace", fail_replace)
    with pytest.raises(OSError):
        run.write_manifest(sample_records())
    assert run.manifest_path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["manifest.parquet"]


READER = """
import json, sys
from pathlib import Path
from manifests.run_dir import RunDir
run, stop, enough = RunDir(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
reads, seen, errors = 0, set(), []
while not stop.exists():
    try:
        rows = run.read_manifest()
        assert len(rows) == 2 and rows[1].error == "x" * rows[1].step, "rows from two versions"
        reads += 1
        seen.add(rows[1].step)
        if len(seen) == 50:
            enough.touch()  # 50 versions read while the writer rewrote them
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")
print(json.dumps({"reads": reads, "versions": len(seen), "errors": errors[:3], "error_count": len(errors)}))
"""


def test_readers_never_see_a_partial_manifest_during_1000_rewrites(tmp_path):
    """A reader process loops over the manifest while the writer replaces it (at least 1000
    times, and until the reader has read 50 different versions) with files of changing size
    (each row's error grows with its step)."""
    run = RunDir(tmp_path / "run")
    records = sample_records()
    records[1].error = ""
    run.write_manifest(records)
    stop, enough = tmp_path / "stop", tmp_path / "enough"
    reader = subprocess.Popen([sys.executable, "-c", READER, str(run.root), str(stop), str(enough)],
                              stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[1])  # fmt: skip
    deadline = time.monotonic() + 120
    step = 0
    while step < 1000 or not enough.exists():
        assert time.monotonic() < deadline and reader.poll() is None, "the reader never read 50 versions"
        step += 1
        records[1].step, records[1].error = step, "x" * step
        run.write_manifest(records)
    stop.touch()
    result = json.loads(reader.communicate(timeout=60)[0])
    assert result["error_count"] == 0, result["errors"]
    assert result["versions"] >= 50, result
    assert run.read_manifest()[1].step == step


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


def columns_of_version(version: int) -> list[str]:
    """The manifest columns an earlier release wrote (manifests/tables/manifest.py's history)."""
    from manifests.tables.manifest import ADDED_IN_VERSION_2, ADDED_IN_VERSION_3, ADDED_IN_VERSION_4, ADDED_IN_VERSION_6

    later = {5: (), 4: (), 3: ADDED_IN_VERSION_4, 2: ADDED_IN_VERSION_3 + ADDED_IN_VERSION_4,
             1: ADDED_IN_VERSION_2 + ADDED_IN_VERSION_3 + ADDED_IN_VERSION_4}[version] + ADDED_IN_VERSION_6  # fmt: skip
    names = [name if name != "flags" or version >= 5 else "flagged" for name in MANIFEST_SCHEMA.names]
    return [name for name in names if name not in later]


@pytest.mark.parametrize("version", [1, 2, 3, 4, 5])
def test_manifests_of_earlier_versions_read_with_the_new_fields_at_their_defaults(tmp_path, version):
    """A manifest as an earlier release wrote it (its columns only, its version in the
    metadata) reads; the next write upgrades it to the current version, values kept."""
    from manifests.tables.manifest import SCHEMA_VERSION
    from manifests.tables.parquet import VERSION_KEY

    written = sample_records()
    flags = [{"label": 1, "verdict": "collapsed", "measure": "diversity", "value": 0.12},
             {"label": 2, "verdict": "low-accuracy", "measure": "accuracy", "value": 0.31}]  # fmt: skip
    later = dict(pid=4242, resumed_from=300, steps_redone=12, skipped_images=1, warning="w", class_ids=["n1", "n2"],
                 quality=0.9, best_checkpoint="splits/000/generator.best.safetensors", best_step=400, flags=flags,
                 seeds=[0, 7], recipes=["{}", '{"because": ["collapsed"], "set": {"g_mode_seeking": 1.0}}'])  # fmt: skip
    written[0] = dataclasses.replace(written[0], **later)  # values an older release could not have written
    columns = columns_of_version(version)
    rows = []
    for record in written:
        row = record.to_row()
        row["flagged"] = record.flagged  # version 4 kept the flags as this text
        rows.append({name: row[name] for name in columns})
    fields = [MANIFEST_SCHEMA.field(name) if name != "flagged" else pa.field("flagged", pa.string()) for name in columns]
    schema = pa.schema(fields, metadata={VERSION_KEY: str(version)})
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp_path / "manifest.parquet")

    run = RunDir(tmp_path)
    records = run.read_manifest()
    defaults = SplitRecord(split=0, classes=[], class_names=[])
    for old, new in zip(written, records):
        for name in MANIFEST_SCHEMA.names:
            if name == "class_ids" and name not in columns:
                assert new.class_ids == new.class_names  # before version 3 the ids were the names
            elif name in columns or name == "flags" and "flagged" in columns:
                assert getattr(new, name) == getattr(old, name), name  # version 4's text parsed into flags
            else:
                assert getattr(new, name) == getattr(defaults, name), name
    assert records[0] != written[0] and records[1:] == written[1:]  # the later columns were really left out
    run.write_manifest(records)
    assert pq.read_schema(run.manifest_path).metadata[VERSION_KEY] == str(SCHEMA_VERSION).encode()
    assert run.read_manifest() == records


def test_a_manifest_of_a_newer_version_is_refused_in_one_line(tmp_path):
    from manifests.tables.parquet import VERSION_KEY

    run = RunDir(tmp_path)
    run.write_manifest(sample_records())
    table = pq.read_table(run.manifest_path)
    pq.write_table(table.replace_schema_metadata({VERSION_KEY: b"99"}), run.manifest_path)
    with pytest.raises(RunDirError, match="schema version 99, newer than this acgan-ensemble reads .*; upgrade"):
        run.read_manifest()
