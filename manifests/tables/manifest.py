"""The manifest's schema: one row per split, written only by the coordinator.

The Arrow schema is spelled out rather than inferred: a column that is all null on the
first write would otherwise get type `null` and break every later write.
"""
from __future__ import annotations

import dataclasses
import re
import datetime as dt
from dataclasses import dataclass

import pyarrow as pa

from manifests.tables.parquet import TableFormat, with_column

SCHEMA_VERSION = 6
ADDED_IN_VERSION_2 = ("pid", "resumed_from", "steps_redone", "skipped_images", "warning")
"""Columns a version-1 manifest lacks; its rows read with those fields at their defaults."""
ADDED_IN_VERSION_3 = ("class_ids",)
"""... and a version-2 one; its class ids read as its class names (they were the same)."""
ADDED_IN_VERSION_4 = ("quality", "best_checkpoint", "best_step", "flagged", "seeds")
"""... and a version-3 one (from before the quality guard)."""
ADDED_IN_VERSION_6 = ("recipes",)
"""... and a version-5 one (from before quality retries changed the recipe): its seeds read as plain retries."""
# Version 5: `flagged`, a text ("417 collapsed (diversity 0.12)"), became `flags`, one struct
# per failing class (FLAG_TYPE); the upgrade parses a version-4 text once, nothing reads it after.


class Status:
    """A split's lifecycle: pending -> running -> succeeded | flagged | failed | interrupted.

    `flagged`: training finished, but the quality guard found classes its best generator
    fails on (collapsed or unrecognisable) after every quality retry; `flagged` in the row
    says which. Its best generator still samples. A relaunch leaves it alone unless given
    --quality-retries.
    `interrupted`: its launch stopped (Ctrl-C, or the coordinator died) before it ended;
    its checkpoints are kept and the next launch resumes it.
    """

    PENDING = "pending"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FLAGGED = "flagged"
    FAILED = "failed"
    INTERRUPTED = "interrupted"
    ALL = (PENDING, RUNNING, SUCCEEDED, FLAGGED, FAILED, INTERRUPTED)
    FINISHED = (SUCCEEDED, FLAGGED)
    """Trained to the end: a relaunch does not train them again (but see FLAGGED)."""


_TIMESTAMP = pa.timestamp("us", tz="UTC")

FLAG_TYPE = pa.struct([
    pa.field("label", pa.int32(), nullable=False),
    pa.field("verdict", pa.string(), nullable=False),  # collapsed or low-accuracy
    pa.field("measure", pa.string(), nullable=False),  # the figure that failed: diversity, distinctness or accuracy
    pa.field("value", pa.float64(), nullable=False),
])  # fmt: skip

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("split", pa.int32(), nullable=False),
        pa.field("classes", pa.list_(pa.int32()), nullable=False),
        pa.field("class_names", pa.list_(pa.string()), nullable=False),
        pa.field("class_ids", pa.list_(pa.string()), nullable=False),
        pa.field("status", pa.string(), nullable=False),
        pa.field("attempt", pa.int32(), nullable=False),
        pa.field("step", pa.int64(), nullable=False),
        pa.field("total_steps", pa.int64(), nullable=False),
        pa.field("loss_d", pa.float64()),
        pa.field("loss_g", pa.float64()),
        pa.field("class_accuracy", pa.float64()),
        pa.field("checkpoint", pa.string()),
        pa.field("checkpoint_step", pa.int64()),
        pa.field("node", pa.string()),
        pa.field("pid", pa.int32()),
        pa.field("device", pa.string()),
        pa.field("train_seconds", pa.float64()),
        pa.field("started_at", _TIMESTAMP),
        pa.field("updated_at", _TIMESTAMP),
        pa.field("finished_at", _TIMESTAMP),
        pa.field("resumed_from", pa.int64()),
        pa.field("steps_redone", pa.int64(), nullable=False),
        pa.field("skipped_images", pa.int64()),
        pa.field("error", pa.string()),
        pa.field("warning", pa.string()),
        pa.field("quality", pa.float64()),
        pa.field("best_checkpoint", pa.string()),
        pa.field("best_step", pa.int64()),
        pa.field("flags", pa.list_(FLAG_TYPE), nullable=False),
        pa.field("seeds", pa.list_(pa.int64()), nullable=False),
        pa.field("recipes", pa.list_(pa.string()), nullable=False),
    ],
)


@dataclass
class SplitRecord:
    """One manifest row. Field names and order match MANIFEST_SCHEMA."""

    split: int
    classes: list[int]
    class_names: list[str]
    class_ids: list[str] = dataclasses.field(default_factory=list)
    """What `--label` accepts besides names: folder names (WordNet ids for ImageNet).
    Empty means the same as class_names."""
    status: str = Status.PENDING
    attempt: int = 0
    """How many times a worker has started training this split (retries included)."""
    step: int = 0
    """Training steps done, as last reported by the worker."""
    total_steps: int = 0
    loss_d: float | None = None
    loss_g: float | None = None
    class_accuracy: float | None = None
    """The discriminator's auxiliary-classifier accuracy on real images, recent batches."""
    checkpoint: str | None = None
    """The latest generator checkpoint (safetensors), relative to the run directory."""
    checkpoint_step: int | None = None
    node: str | None = None
    pid: int | None = None
    """The worker process of the latest attempt, on `node`."""
    device: str | None = None
    train_seconds: float | None = None
    """Seconds spent inside the training loop, summed over attempts."""
    started_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None
    finished_at: dt.datetime | None = None
    resumed_from: int | None = None
    """The checkpoint step the latest attempt started from (0: from scratch)."""
    steps_redone: int = 0
    """Steps trained twice because an attempt died after its last checkpoint, counted from
    progress reports (one a second), so up to a second of training may go uncounted."""
    skipped_images: int | None = None
    """Unreadable images left out of this split's data."""
    error: str | None = None
    warning: str | None = None
    """Something the user should know that did not stop training (e.g. a checkpoint fallback)."""
    quality: float | None = None
    """The quality guard's score of the best generator so far (workers/quality/measures.py): the mean
    over classes of accuracy x min(1, diversity); None with the guard off."""
    best_checkpoint: str | None = None
    """The best generator by that score (safetensors), relative to the run directory; what
    sampling and evaluation use by default."""
    best_step: int | None = None
    flags: list[dict] = dataclasses.field(default_factory=list)
    """The best generator's failing classes and why: {label, verdict, measure, value} each."""
    seeds: list[int] = dataclasses.field(default_factory=list)
    """Every seed this split was trained with, in order: one more per quality retry (a fresh
    start). The last one is the current. Empty: only the run's derived seed."""
    recipes: list[str] = dataclasses.field(default_factory=list)
    """What each seed's attempt changed from the run's recipe, one JSON object per seed (in
    step with `seeds`; ensemble/launching/recipes.py): `{}` for the first, and for a quality
    retry what failed and what it changed, e.g. {"because": ["collapsed"], "set":
    {"g_mode_seeking": 1.0}}. Shorter than `seeds` (runs from before version 6): `{}` each."""

    def __post_init__(self) -> None:
        if not self.class_ids:
            self.class_ids = list(self.class_names)

    def to_row(self) -> dict:
        # Not dataclasses.asdict: its deep copy was 2.4 s of `status --json` at 10,000
        # splits (bench/status_scale.py). The lists are copied; their items are immutable.
        row = {name: getattr(self, name) for name in _FIELD_NAMES}
        return {name: list(value) if isinstance(value, list) else value for name, value in row.items()}

    @classmethod
    def from_row(cls, row: dict) -> "SplitRecord":
        return cls(**row)

    @property
    def flagged(self) -> str | None:
        """The flags as people read them: `417 collapsed (diversity 0.12); 418 ...`, or None."""
        return "; ".join(f"{f['label']} {f['verdict']} ({f['measure']} {f['value']:.2f})" for f in self.flags) or None


_FIELD_NAMES = tuple(f.name for f in dataclasses.fields(SplitRecord))


def count_by_status(records: list[SplitRecord]) -> dict[str, int]:
    """{status: number of splits}, every status present, in lifecycle order."""
    return {status: sum(r.status == status for r in records) for status in Status.ALL}


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def _added(names: tuple[str, ...]):
    """An upgrade that adds `names` (at their places in the final order) with their defaults."""
    order = [name if name != "flags" else "flagged" for name in MANIFEST_SCHEMA.names]
    defaults = {f.name: f.default for f in dataclasses.fields(SplitRecord) if f.default is not dataclasses.MISSING}
    defaults["seeds"] = defaults["recipes"] = []

    def upgrade(table: pa.Table) -> pa.Table:
        for name in names:
            kind = pa.string() if name == "flagged" else MANIFEST_SCHEMA.field(name).type
            before = [n for n in order[: order.index(name)] if n in table.column_names]
            table = with_column(table, name, [defaults.get(name)] * table.num_rows, kind, after=before[-1])
        return table

    return upgrade


def _class_ids_as_names(table: pa.Table) -> pa.Table:
    ids = table.column("class_names").to_pylist()
    return with_column(table, "class_ids", ids, MANIFEST_SCHEMA.field("class_ids").type, after="class_names")


_FLAG_TEXT = re.compile(r"(\d+) (\S+) \((\w+) ([-\d.]+)\)")


def _flags_from_text(table: pa.Table) -> pa.Table:
    """Version 4's `flagged` text, as the coordinator wrote it, into version 5's structs."""
    flags = [[{"label": int(m[1]), "verdict": m[2], "measure": m[3], "value": float(m[4])}
              for m in _FLAG_TEXT.finditer(text or "")] for text in table.column("flagged").to_pylist()]  # fmt: skip
    at = table.schema.get_field_index("flagged")
    return table.remove_column(at).add_column(at, MANIFEST_SCHEMA.field("flags"), pa.array(flags, pa.list_(FLAG_TYPE)))


def _unmarked(table: pa.Table) -> int:
    raise ValueError("no version")  # every manifest carries its version: this file is not one


MANIFEST_FORMAT = TableFormat(
    what="manifest",
    schema=MANIFEST_SCHEMA,
    version=SCHEMA_VERSION,
    unmarked_version=_unmarked,
    upgrades={1: _added(ADDED_IN_VERSION_2), 2: _class_ids_as_names, 3: _added(ADDED_IN_VERSION_4), 4: _flags_from_text,
              5: _added(ADDED_IN_VERSION_6)},
    remedy="restore the manifest from a backup, or launch a new --run (the checkpoints under RUN/splits are untouched)",
)
