"""RUN/evaluation.parquet: what `ensemble evaluate` measured, one row per class.

Written whole like the manifest (manifests/storage/). Evaluating some splits replaces their
rows and keeps the others'. Read without torch: `ensemble status` shows a quality column
from it. Versioned (manifests/tables/parquet.py): a file an older release wrote is read in
this version's columns.
"""
from __future__ import annotations

import pyarrow as pa

from manifests.storage import Location, location
from manifests.tables.parquet import TableFormat, table_rows, with_column

EVALUATION_NAME = "evaluation.parquet"

OK, COLLAPSED, LOW_ACCURACY, MEMORISED = "ok", "collapsed", "low-accuracy", "memorised"
VERDICTS = (OK, COLLAPSED, LOW_ACCURACY, MEMORISED)
"""The values of the verdict column (workers/quality/verdicts.py says when each is given)."""

EVALUATION_SCHEMA = pa.schema([
    pa.field("label", pa.int32(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("class_id", pa.string()),  # the folder name (a WordNet id for ImageNet); version 2
    pa.field("split", pa.int32(), nullable=False),
    pa.field("checkpoint", pa.string(), nullable=False),  # best or latest
    pa.field("checkpoint_step", pa.int64(), nullable=False),
    pa.field("samples", pa.int32(), nullable=False),
    pa.field("accuracy", pa.float64(), nullable=False),
    pa.field("real_accuracy", pa.float64()),
    pa.field("ms_ssim", pa.float64()),
    pa.field("real_ms_ssim", pa.float64()),
    pa.field("diversity", pa.float64(), nullable=False),
    pa.field("distinctness", pa.float64()),  # version 3
    pa.field("fid", pa.float64()),
    pa.field("split_fid", pa.float64()),
    pa.field("split_kid", pa.float64()),
    pa.field("novelty", pa.float64()),
    pa.field("imagenet_accuracy", pa.float64()),
    pa.field("verdict", pa.string(), nullable=False),
])  # fmt: skip

VERSION = 3
"""1: the measures and the verdict (files without a recorded version); 2: + class_id, null
in rows evaluated by version 1; 3: + distinctness, null in rows evaluated before it."""

FORMAT = TableFormat(
    what="evaluation table",
    schema=EVALUATION_SCHEMA,
    version=VERSION,
    unmarked_version=lambda table: 1,
    upgrades={1: lambda table: with_column(table, "class_id", [None] * table.num_rows, pa.string(), after="name"),
              2: lambda table: with_column(table, "distinctness", [None] * table.num_rows, pa.float64(), after="diversity")},
    remedy="delete it and run `ensemble evaluate` again",
)


def evaluation_path(run_root: "Location | str") -> Location:
    return location(run_root) / EVALUATION_NAME


def read_evaluation(run_root: "Location | str") -> list[dict]:
    """The rows, in this version's columns, or [] when the run has not been evaluated."""
    path = evaluation_path(run_root)
    if not path.is_file():
        return []
    return table_rows(FORMAT.from_bytes(path.read_bytes(), path))


def write_evaluation(run_root: "Location | str", rows: list[dict]) -> Location:
    """Replace the rows of the splits in `rows`, keep the rest; sorted by label. The read, the
    merge and the write are one step against other evaluates of the run (`--only 0-49` and
    `--only 50-99` at once both keep their rows): under a flock on local disk, and on S3 a
    write only over the version read (If-Match), read and merged again when another won."""
    path = evaluation_path(run_root)
    path.update(lambda data: _merged(data, path, rows))
    return path


def _merged(data: bytes | None, path: Location, rows: list[dict]) -> bytes:
    """The table `data` holds (none: empty) with the splits of `rows` replaced by them."""
    evaluated = {row["split"] for row in rows}
    before = table_rows(FORMAT.from_bytes(data, path)) if data is not None else []
    merged = sorted([row for row in before if row["split"] not in evaluated] + rows, key=lambda row: row["label"])
    return FORMAT.to_bytes(pa.Table.from_pylist(merged, schema=EVALUATION_SCHEMA))


def count_verdicts(rows: list[dict]) -> dict[str, int]:
    """{verdict: classes}, every verdict present, in VERDICTS' order."""
    return {verdict: sum(row["verdict"] == verdict for row in rows) for verdict in VERDICTS}


def counts_by_split(rows: list[dict]) -> dict[int, dict]:
    """{split: {"classes": n, "ok": n, "flagged": {label: verdict}}} for the status view."""
    counts: dict[int, dict] = {}
    for row in rows:
        entry = counts.setdefault(row["split"], {"classes": 0, "ok": 0, "flagged": {}})
        entry["classes"] += 1
        if row["verdict"] == OK:
            entry["ok"] += 1
        else:
            entry["flagged"][row["label"]] = row["verdict"]
    return counts
