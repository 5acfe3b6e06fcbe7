"""How every table of a run is read and written: one Parquet file through the storage layer,
its schema version in the file's metadata, rows brought up to this code's version on read.

A table module (manifest.py, history.py, evaluation.py) names its schema, its version, and
how to bring each older version one step up; `read_versioned` does the rest and refuses a
file of a newer version in one line instead of misreading it.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.errors import UserError, first_line

VERSION_KEY = b"acgan_ensemble.schema_version"

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


class TableError(UserError):
    """A table file that cannot be read as it is: unreadable, or written by a newer release."""


@dataclass(frozen=True)
class TableFormat:
    """What a table module declares: its schema and version, how to tell the version of a file
    written before versions were recorded, and one upgrade step per older version."""

    what: str
    """How messages name the table, e.g. `evaluation table`."""
    schema: pa.Schema
    version: int
    unmarked_version: Callable[[pa.Table], int]
    """The version of a file whose metadata has none (written before versions were recorded)."""
    upgrades: dict[int, Callable[[pa.Table], pa.Table]]
    """{v: a table of version v -> the same rows at version v + 1}, for every v < version."""
    remedy: str
    """What to do about a file that cannot be read, for the one-line error."""

    def to_bytes(self, table: pa.Table) -> bytes:
        """The Parquet bytes of `table` (of this schema), its version in the metadata."""
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), VERSION_KEY: str(self.version).encode()})
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        return sink.getvalue().to_pybytes()

    def from_bytes(self, data: bytes, where: object) -> pa.Table:
        """The table in `data` (read from `where`), upgraded to this version."""
        try:
            # ParquetFile rather than read_table: the latter imports pyarrow.dataset and pandas
            # (0.2 s, the most of `ensemble status`). Decoded on this thread: a threaded read
            # starts Arrow's CPU pool, whose threads torn down at exit can abort a short-lived
            # command (SIGABRT, "terminate called without an active exception": apache/arrow
            # #34314; one `ensemble status --summary` in a CI run). Run tables are small.
            table = pq.ParquetFile(pa.BufferReader(data)).read(use_threads=False)
        except (pa.ArrowInvalid, OSError) as exc:
            raise TableError(f"{self.what} {where} is unreadable ({first_line(exc)}); {self.remedy}") from None
        marked = (table.schema.metadata or {}).get(VERSION_KEY)
        try:
            version = int(marked) if marked is not None else self.unmarked_version(table)
        except ValueError:
            shown = marked.decode(errors="replace") if marked is not None else "?"
            raise TableError(f"{self.what} {where} has schema version {shown} with columns {table.schema.names[:4]}...; "
                             f"this acgan-ensemble reads versions 1-{self.version} ({self.remedy})") from None  # fmt: skip
        if version > self.version:
            raise TableError(
                f"{self.what} {where} has schema version {version}, newer than this acgan-ensemble reads "
                f"(1-{self.version}); upgrade acgan-ensemble to read it"
            )
        while version < self.version:
            table = self.upgrades[version](table)
            version += 1
        mismatched = table.schema.names != self.schema.names or any(
            table.schema.field(name).type != self.schema.field(name).type for name in self.schema.names)
        if mismatched:
            raise TableError(f"{self.what} {where} has columns {table.schema.names[:4]}... of other names or types "
                             f"than its version {version} has; {self.remedy}")  # fmt: skip
        return table


def with_column(table: pa.Table, name: str, values: list, type_: pa.DataType, after: str | None = None) -> pa.Table:
    """`table` with a column added after column `after` (at the end when None): how upgrades
    add what a version introduced."""
    index = table.schema.get_field_index(after) + 1 if after else table.num_columns
    return table.add_column(index, pa.field(name, type_), pa.array(values, type_))


def table_rows(table: pa.Table) -> list[dict]:
    """table.to_pylist(), with UTC timestamps converted here: pyarrow converts tz-aware ones
    through pandas, whose import alone is 0.2 s of every `ensemble status`."""
    stamps = [i for i, field in enumerate(table.schema) if pa.types.is_timestamp(field.type)]
    for i in stamps:
        # view, not cast: the same microseconds without importing pyarrow.compute (28 ms).
        as_int = pa.chunked_array([chunk.view(pa.int64()) for chunk in table.column(i).chunks], pa.int64())
        table = table.set_column(i, table.schema.field(i).name, as_int)
    rows = table.to_pylist()
    names = [table.schema.field(i).name for i in stamps]
    for row in rows:
        for name in names:
            if row[name] is not None:
                row[name] = _EPOCH + dt.timedelta(microseconds=row[name])
    return rows
