"""RUN/data-index.parquet: every image file of the run's data folder, with its size and time.

An image folder is listed once per launch, by the coordinator (workers/datasets/listing.py),
and the listing is kept here, so that no split lists the whole folder: at ImageNet's size
(1.28M files) a listing is seconds and hundreds of MB of names per process, and 100 splits
each listing it would pay that 100 times. A split reads the rows of its own classes only.

Rows are sorted by class index, then file name, in row groups of ROW_GROUP_ROWS: a split
reads the footer and the row groups whose class_index range meets its classes (from the
row groups' statistics), a few hundred KB whatever the dataset's size, locally or by range
requests on object storage. Written whole and atomically, like every run file.
"""
from __future__ import annotations

import bisect
from dataclasses import dataclass, field

import pyarrow as pa
import pyarrow.parquet as pq

from manifests.errors import first_line
from manifests.storage import Location
from manifests.tables.parquet import VERSION_KEY, TableError

DATA_INDEX_NAME = "data-index.parquet"
VERSION = 1
ROOT_KEY = b"acgan_ensemble.data_root"
ROW_GROUP_ROWS = 16_384
"""About 12 ImageNet classes: a split of 10 consecutive classes reads one or two row groups."""

SCHEMA = pa.schema([
    pa.field("class_index", pa.int32(), nullable=False),
    pa.field("class_id", pa.string(), nullable=False),  # the folder name
    pa.field("file", pa.string(), nullable=False),  # the file's name in its class folder
    pa.field("size", pa.int64(), nullable=False),
    pa.field("mtime_ns", pa.int64(), nullable=False),
])  # fmt: skip


@dataclass(frozen=True)
class ClassFiles:
    """One class folder's image files, sorted by name."""

    class_id: str
    names: list[str]
    sizes: list[int]
    mtimes_ns: list[int]

    def batch(self, class_index: int) -> pa.RecordBatch:
        n = len(self.names)
        return pa.RecordBatch.from_arrays(
            [pa.array([class_index] * n, pa.int32()), pa.array([self.class_id] * n, pa.string()),
             pa.array(self.names, pa.string()), pa.array(self.sizes, pa.int64()), pa.array(self.mtimes_ns, pa.int64())],
            schema=SCHEMA)  # fmt: skip

    def stamps(self) -> dict[str, tuple[int, int]]:
        return dict(zip(self.names, zip(self.sizes, self.mtimes_ns)))

    def differences(self, now: "ClassFiles") -> tuple[int, int, int]:
        """(files added, removed, changed) from this listing of the class folder to `now`."""
        before, after = self.stamps(), now.stamps()
        changed = sum(before[name] != after[name] for name in before.keys() & after.keys())
        return len(after.keys() - before.keys()), len(before.keys() - after.keys()), changed


class DataIndex:
    """The files of all, or some, classes of the image folder `root` (str of its Location)."""

    def __init__(self, root: str, table: pa.Table):
        import pyarrow.compute as pc

        self.root = root
        self.table = table.combine_chunks()
        # Sorted by class: each class's rows are one slice, from the counts per class (in Arrow:
        # no Python int per file, which at 1.28M files would be 50 MB; nor numpy, whose
        # conversion imports pandas, 0.25 s of every split's start).
        counts = pc.value_counts(self.table.column("class_index")).to_pylist()
        counted = sorted((c["values"], c["counts"]) for c in counts)
        self.class_indices = [c for c, _ in counted]
        self._starts = [0]
        for _, n in counted:
            self._starts.append(self._starts[-1] + n)

    @classmethod
    def from_batches(cls, root: str, batches: "list[pa.RecordBatch]") -> "DataIndex":
        return cls(root, pa.Table.from_batches(batches, schema=SCHEMA))

    def __len__(self) -> int:
        return self.table.num_rows

    def _slice(self, class_index: int) -> pa.Table:
        position = bisect.bisect_left(self.class_indices, class_index)
        if position == len(self.class_indices) or self.class_indices[position] != class_index:
            raise KeyError(f"class {class_index} is not in the data index of {self.root}")
        start, end = self._starts[position], self._starts[position + 1]
        return self.table.slice(start, end - start)

    def files(self, class_index: int) -> ClassFiles:
        rows = self._slice(class_index)
        return ClassFiles(rows.column("class_id")[0].as_py() if rows.num_rows else "", rows.column("file").to_pylist(),
                          rows.column("size").to_pylist(), rows.column("mtime_ns").to_pylist())  # fmt: skip

    def class_ids(self) -> list[str]:
        ids = self.table.column("class_id")
        return [ids[start].as_py() for start in self._starts[:-1]]

    # -- the file --------------------------------------------------------------------------
    def to_bytes(self) -> bytes:
        metadata = {VERSION_KEY: str(VERSION).encode(), ROOT_KEY: self.root.encode()}
        sink = pa.BufferOutputStream()
        pq.write_table(self.table.replace_schema_metadata(metadata), sink, row_group_size=ROW_GROUP_ROWS)
        return sink.getvalue().to_pybytes()

    def write(self, path: Location) -> None:
        path.write_bytes(self.to_bytes())

    @classmethod
    def read(cls, path: Location, classes: "list[int] | None" = None) -> "DataIndex":
        """The index at `path`, or only the rows of `classes` (reading only the row groups that hold them)."""
        try:
            with _opened(path) as source:
                parquet = pq.ParquetFile(source)
                metadata = parquet.schema_arrow.metadata or {}
                _check_version(metadata, path)
                groups = list(range(parquet.num_row_groups)) if classes is None else _groups_of(parquet, classes)
                table = parquet.read_row_groups(groups) if groups else SCHEMA.empty_table()
        except FileNotFoundError:
            raise
        except (pa.ArrowInvalid, OSError) as exc:
            raise TableError(f"data index {path} is unreadable ({first_line(exc)}); delete it: the next launch "
                             f"lists the data again") from None  # fmt: skip
        if table.schema.remove_metadata() != SCHEMA:
            raise TableError(f"data index {path} has other columns than {SCHEMA.names}; delete it: the next launch "
                             f"lists the data again")  # fmt: skip
        index = cls(metadata.get(ROOT_KEY, b"").decode(), table)
        if classes is not None:  # the row groups' other classes' rows are dropped
            present = set(index.class_indices)
            wanted = [c for c in sorted(set(classes)) if c in present]
            index = cls(index.root, pa.concat_tables([index._slice(c) for c in wanted]) if wanted else SCHEMA.empty_table())
        return index


def _opened(path: Location):
    """A random-access file of `path`: only the footer and the chosen row groups are read."""
    if path.is_local:
        return pa.OSFile(str(path))
    return path.fs.open_input_file(path.path)


def _check_version(metadata: dict, path: Location) -> None:
    version = int(metadata.get(VERSION_KEY, b"0") or 0)
    if version > VERSION:
        raise TableError(f"data index {path} has schema version {version}, newer than this acgan-ensemble reads "
                         f"(1-{VERSION}); upgrade acgan-ensemble")  # fmt: skip
    if version < 1:
        raise TableError(f"data index {path} has no schema version; delete it: the next launch lists the data again")


def _groups_of(parquet: pq.ParquetFile, classes: list[int]) -> list[int]:
    """The row groups whose class_index statistics overlap `classes`."""
    wanted = sorted(set(classes))
    column = parquet.schema_arrow.get_field_index("class_index")
    groups = []
    for g in range(parquet.num_row_groups):
        stats = parquet.metadata.row_group(g).column(column).statistics
        if stats is None or not stats.has_min_max:
            groups.append(g)  # no statistics: read it to be sure
            continue
        i = bisect.bisect_left(wanted, stats.min)
        if i < len(wanted) and wanted[i] <= stats.max:
            groups.append(g)
    return groups


@dataclass
class IndexChanges:
    """What differs between the index a run was launched with and a new listing."""

    classes_added: list[str] = field(default_factory=list)
    classes_removed: list[str] = field(default_factory=list)
    files_added: int = 0
    files_removed: int = 0
    files_changed: int = 0
    changed_classes: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.classes_added or self.classes_removed or self.changed_classes)

    def describe(self) -> str:
        if self.classes_added or self.classes_removed:
            parts = [f"{len(names)} class folder(s) {how} ({', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
                     for names, how in ((self.classes_added, "added"), (self.classes_removed, "removed")) if names]  # fmt: skip
            return "; ".join(parts)
        counts = [f"{n} file(s) {how}" for n, how in ((self.files_added, "added"), (self.files_removed, "removed"),
                                                      (self.files_changed, "changed")) if n]  # fmt: skip
        shown = ", ".join(self.changed_classes[:3]) + (", ..." if len(self.changed_classes) > 3 else "")
        return f"{', '.join(counts)} in {len(self.changed_classes)} class folder(s) ({shown})"


def changes(before: DataIndex, now: DataIndex) -> IndexChanges:
    """How `now` differs from `before` (both whole indexes of the same folder)."""
    found = IndexChanges()
    old_ids, new_ids = before.class_ids(), now.class_ids()
    if old_ids != new_ids:
        found.classes_added = sorted(set(new_ids) - set(old_ids))
        found.classes_removed = sorted(set(old_ids) - set(new_ids))
        if not (found.classes_added or found.classes_removed):  # same names, other order: cannot happen when sorted
            found.classes_added = new_ids
        return found
    if before.table.equals(now.table):
        return found  # the common case, compared in Arrow without a Python object per file
    for c in now.class_indices:
        if before._slice(c).equals(now._slice(c)):
            continue
        files = now.files(c)
        added, removed, changed = before.files(c).differences(files)
        found.changed_classes.append(files.class_id)
        found.files_added += added
        found.files_removed += removed
        found.files_changed += changed
    return found
