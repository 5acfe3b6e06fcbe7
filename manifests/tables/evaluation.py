"""RUN/evaluation.parquet: what `ensemble evaluate` measured, one row per class.

Written whole like the manifest (manifests/storage/). Evaluating some
splits replaces their rows and keeps the others'. Read without torch: `ensemble status`
shows a quality column from it.
"""
from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.run_dir import RunDirError
from manifests.storage import Location, location

EVALUATION_NAME = "evaluation.parquet"

EVALUATION_SCHEMA = pa.schema([
    pa.field("label", pa.int32(), nullable=False),
    pa.field("name", pa.string(), nullable=False),
    pa.field("split", pa.int32(), nullable=False),
    pa.field("checkpoint", pa.string(), nullable=False),  # best or latest
    pa.field("checkpoint_step", pa.int64(), nullable=False),
    pa.field("samples", pa.int32(), nullable=False),
    pa.field("accuracy", pa.float64(), nullable=False),
    pa.field("real_accuracy", pa.float64()),
    pa.field("ms_ssim", pa.float64()),
    pa.field("real_ms_ssim", pa.float64()),
    pa.field("diversity", pa.float64(), nullable=False),
    pa.field("fid", pa.float64()),
    pa.field("split_fid", pa.float64()),
    pa.field("split_kid", pa.float64()),
    pa.field("novelty", pa.float64()),
    pa.field("imagenet_accuracy", pa.float64()),
    pa.field("verdict", pa.string(), nullable=False),
])  # fmt: skip


def evaluation_path(run_root: "Location | str") -> Location:
    return location(run_root) / EVALUATION_NAME


def read_evaluation(run_root: "Location | str") -> list[dict]:
    """The rows, or [] when the run has not been evaluated."""
    path = evaluation_path(run_root)
    if not path.is_file():
        return []
    try:
        table = pq.ParquetFile(pa.BufferReader(path.read_bytes())).read()
    except (pa.ArrowInvalid, OSError) as exc:
        raise RunDirError(f"{path} is unreadable ({exc}); delete it and run `ensemble evaluate` again") from None
    if table.schema.names != EVALUATION_SCHEMA.names:
        raise RunDirError(f"{path} has other columns than this version writes; run `ensemble evaluate` again")
    return table.to_pylist()


def write_evaluation(run_root: "Location | str", rows: list[dict]) -> Location:
    """Replace the rows of the splits in `rows`, keep the rest; sorted by label."""
    evaluated = {row["split"] for row in rows}
    kept = [row for row in read_evaluation(run_root) if row["split"] not in evaluated]
    merged = sorted(kept + rows, key=lambda row: row["label"])
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(merged, schema=EVALUATION_SCHEMA), buffer)
    path = evaluation_path(run_root)
    path.write_bytes(buffer.getvalue())
    return path


def counts_by_split(rows: list[dict]) -> dict[int, dict]:
    """{split: {"classes": n, "ok": n, "flagged": {label: verdict}}} for the status view."""
    counts: dict[int, dict] = {}
    for row in rows:
        entry = counts.setdefault(row["split"], {"classes": 0, "ok": 0, "flagged": {}})
        entry["classes"] += 1
        if row["verdict"] == "ok":
            entry["ok"] += 1
        else:
            entry["flagged"][row["label"]] = row["verdict"]
    return counts
