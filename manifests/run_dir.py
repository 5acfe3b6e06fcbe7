"""A run directory on disk: its spec, its manifest and each split's checkpoint folder.

    RUN/
      run.json             what was launched (data, splits, steps, model config, seed)
      manifest.parquet     one row per split; written only by the coordinator
      splits/041/          split 41's checkpoints (written only by its worker)

Every file is written through manifests/atomic_files.py: a reader at any instant sees a
whole old file or a whole new one, never a partial write, and a power loss neither.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import tempfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.atomic_files import atomic_write_bytes
from manifests.errors import UserError, first_line
from manifests.schema import MANIFEST_SCHEMA, SCHEMA_VERSION, SCHEMA_VERSION_KEY, SplitRecord, columns_of_version

MANIFEST_NAME = "manifest.parquet"
SPEC_NAME = "run.json"


class RunDirError(UserError):
    """A run directory, manifest or spec that cannot be used as it is."""


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def _rows(table: pa.Table) -> list[dict]:
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


class RunDir:
    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    @property
    def spec_path(self) -> Path:
        return self.root / SPEC_NAME

    def split_dir(self, split_id: int) -> Path:
        return self.root / "splits" / f"{split_id:03d}"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def require(self) -> None:
        """Raise a RunDirError that says what to do when this is not a launched run."""
        if self.root.exists() and not self.root.is_dir():
            raise RunDirError(f"--run {self.root} is a file, not a run directory; pass the folder a launch used")
        if not self.root.exists():
            raise RunDirError(
                f"run directory {self.root} does not exist; start one with "
                f"`ensemble launch --run {self.root}` or pass --run DIR"
            )
        if not self.exists():
            raise RunDirError(
                f"{self.root} holds no {MANIFEST_NAME}: it is not an ensemble run; "
                f"pass the --run DIR that `ensemble launch` used"
            )

    def check_writable(self) -> None:
        """Fail before any work starts when the run cannot be written, leaving nothing behind."""
        if self.root.exists() and not self.root.is_dir():
            raise RunDirError(f"--run {self.root} is a file; pass a folder for the run")
        existing = self.root.absolute()
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            raise RunDirError(f"cannot create run directory {self.root}: {existing} is a file")
        try:
            tempfile.TemporaryFile(dir=existing).close()  # created and removed: nothing stays
        except OSError as exc:
            raise RunDirError(
                f"cannot write the run {self.root} into {existing} ({exc.strerror or exc}); "
                f"pass a --run DIR you can write to"
            ) from None

    # -- spec ---------------------------------------------------------------------------
    def read_spec(self) -> dict:
        try:
            return json.loads(self.spec_path.read_text())
        except FileNotFoundError:
            raise RunDirError(f"{self.spec_path} is missing; the run cannot be resumed") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise RunDirError(f"{self.spec_path} is not valid JSON ({exc}); restore or remove it") from None

    def write_spec(self, spec: dict) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.spec_path, (json.dumps(spec, indent=2, sort_keys=True) + "\n").encode())

    # -- manifest -----------------------------------------------------------------------
    def read_manifest(self) -> list[SplitRecord]:
        self.require()
        try:
            # One open and one read: given a path, pyarrow may open the file again to read
            # the row groups after the footer, and a rewrite in between (a new inode) would
            # pair the old footer with the new file's bytes.
            # ParquetFile rather than read_table: the latter imports pyarrow.dataset and pandas
            # (0.2 s, the most of `ensemble status`).
            table = pq.ParquetFile(pa.BufferReader(self.manifest_path.read_bytes())).read()
        except (pa.ArrowInvalid, OSError) as exc:
            raise RunDirError(
                f"manifest {self.manifest_path} is unreadable ({first_line(exc)}); restore it from a backup "
                f"(the checkpoints under {self.root / 'splits'} are untouched)"
            ) from None
        version = (table.schema.metadata or {}).get(SCHEMA_VERSION_KEY, b"?").decode()
        expected = columns_of_version(version)
        if table.schema.names != expected or any(
            table.schema.field(name).type != MANIFEST_SCHEMA.field(name).type for name in expected
        ):
            raise RunDirError(
                f"manifest {self.manifest_path} has schema version {version} with columns "
                f"{table.schema.names[:4]}...; this ensemble reads versions 1-{SCHEMA_VERSION} "
                f"(restore the manifest from a backup, or launch a new --run)"
            )
        return [SplitRecord.from_row(row) for row in _rows(table)]

    def write_manifest(self, records: list[SplitRecord]) -> None:
        table = pa.Table.from_pylist([r.to_row() for r in records], schema=MANIFEST_SCHEMA)
        sink = pa.BufferOutputStream()
        pq.write_table(table, sink)
        self.root.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(self.manifest_path, sink.getvalue().to_pybytes())
