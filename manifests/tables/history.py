"""A split's training history: splits/NNN/history.parquet, one row per `history_every` steps,
each the mean over the steps since the row before. Written by the split's worker at each
checkpoint (atomically, from rows that the checkpoint itself holds, so the file and the
resumable state never disagree); read it with pyarrow or pandas to draw curves.
"""
from __future__ import annotations

import pyarrow as pa

from manifests.storage import Location, location
from manifests.tables.parquet import TableFormat, table_rows, with_column

HISTORY_NAME = "history.parquet"
METRICS = ("loss_d", "loss_g", "class_accuracy", "class_accuracy_fake", "d_real", "d_fake")
"""Per row: both losses; D's class-head accuracy on real images (the manifest's
class_accuracy) and on G's fakes (how well G's images carry their class); D's mean
probability of "real" on real and on fake images."""
RENAMED = {"accuracy_real": "class_accuracy", "accuracy_fake": "class_accuracy_fake"}
"""Columns of version-2 histories, named before they matched the manifest's: old -> new."""
GUARD_METRICS = ("sample_accuracy", "sample_diversity", "quality")
"""On the rows of the steps the quality guard checked (null on the others): the mean over
classes of the split classifier's accuracy on a fixed batch of samples, the least diverse
class's diversity, and the generator's quality score (workers/quality/measures.py)."""
ROW_WIDTH = len(METRICS) + 2 + len(GUARD_METRICS)
"""A row as the trainer keeps it: [step, *METRICS, train_seconds, *GUARD_METRICS], NaN where
the guard did not run."""

HISTORY_SCHEMA = pa.schema(
    [pa.field("split", pa.int32(), nullable=False), pa.field("step", pa.int64(), nullable=False)]
    + [pa.field(name, pa.float64(), nullable=False) for name in METRICS]
    + [pa.field("train_seconds", pa.float64(), nullable=False)]
    + [pa.field(name, pa.float64()) for name in GUARD_METRICS]
)


VERSION = 3
"""1: the losses and accuracies; 2: + the guard's figures (GUARD_METRICS); 3: accuracies
named as the manifest's (RENAMED). Files before version 3 carry no version: it is told by
their columns."""


def _unmarked_version(table: pa.Table) -> int:
    if "accuracy_real" not in table.column_names:
        return 3
    return 2 if "quality" in table.column_names else 1


def _add_guard_metrics(table: pa.Table) -> pa.Table:
    for name in GUARD_METRICS:
        table = with_column(table, name, [None] * table.num_rows, pa.float64())
    return table


FORMAT = TableFormat(
    what="history",
    schema=HISTORY_SCHEMA,
    version=VERSION,
    unmarked_version=_unmarked_version,
    upgrades={1: _add_guard_metrics,
              2: lambda table: table.rename_columns([RENAMED.get(n, n) for n in table.column_names])},  # fmt: skip
    remedy="delete it: the split's next checkpoint writes it again",
)


def write_history(split_dir: "Location | str", split: int, rows: list[list[float]]) -> Location:
    """rows: ROW_WIDTH values each (see ROW_WIDTH); a NaN guard figure is written as null."""
    columns = list(zip(*rows)) if rows else [[] for _ in range(ROW_WIDTH)]
    arrays = [pa.array([split] * len(rows), pa.int32()), pa.array([int(s) for s in columns[0]], pa.int64())]
    arrays += [pa.array(column, pa.float64()) for column in columns[1 : len(METRICS) + 2]]
    arrays += [pa.array([None if v != v else v for v in column], pa.float64()) for column in columns[len(METRICS) + 2 :]]
    path = location(split_dir) / HISTORY_NAME
    path.write_bytes(FORMAT.to_bytes(pa.Table.from_arrays(arrays, schema=HISTORY_SCHEMA)))
    return path


def padded_rows(rows: list[list[float]]) -> list[list[float]]:
    """Rows of a checkpoint written before the guard existed, given NaN guard figures."""
    return [row + [float("nan")] * (ROW_WIDTH - len(row)) for row in rows]


def read_history(split_dir: "Location | str") -> list[dict]:
    """The rows of a split's history, in this version's columns whatever release wrote it."""
    path = location(split_dir) / HISTORY_NAME
    return table_rows(FORMAT.from_bytes(path.read_bytes(), path))
