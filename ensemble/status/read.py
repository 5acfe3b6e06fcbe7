"""Where every split of a run stands, read from its manifest. Imports neither torch nor Ray.

The manifest says `running` for a split whose launch was alive at its last write. When no
launch holds the run's lock any more (its coordinator was killed), those splits are shown
as `interrupted`, which is the truth: nothing trains them until the next launch resumes
them from their checkpoints. The manifest itself is left as it is; only a launch writes it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from manifests.tables.evaluation import count_verdicts, counts_by_split, read_evaluation
from manifests.locks.holder import LaunchHolder
from manifests.locks.launch_lock import launch_state
from manifests.run_dir import RunDir, storage_errors
from manifests.tables.manifest import SplitRecord, Status, count_by_status


@dataclass(frozen=True)
class RunStatus:
    run_dir: object
    """The run's Location (manifests/storage/)."""
    records: list[SplitRecord]
    launch: LaunchHolder | None = None
    """The launch running on this run now, if any."""
    expired_lease: LaunchHolder | None = None
    """On object storage: the lease a launch left when it was killed, until another takes it."""
    evaluated: dict[int, dict] | None = None
    """{split: {"classes", "ok", "flagged": {label: verdict}}} once `ensemble evaluate` ran."""

    @property
    def counts(self) -> dict[str, int]:
        return count_by_status(self.records)

    @property
    def steps_done(self) -> int:
        return sum(r.step for r in self.records)

    @property
    def steps_total(self) -> int:
        return sum(r.total_steps for r in self.records)

    def summary_line(self) -> str:
        counts = ", ".join(f"{n} {status}" for status, n in self.counts.items() if n)
        percent = 100.0 * self.steps_done / self.steps_total if self.steps_total else 0.0
        line = f"{len(self.records)} splits: {counts}; {percent:.0f}% of steps done"
        if self.evaluated:
            classes = sum(e["classes"] for e in self.evaluated.values())
            ok = sum(e["ok"] for e in self.evaluated.values())
            verdicts = count_verdicts([{"verdict": v} for e in self.evaluated.values() for v in e["flagged"].values()])
            flagged = "".join(f", {n} {v}" for v, n in sorted(verdicts.items()) if n)
            line += f"; evaluated {classes} classes: {ok} ok{flagged}"
        if self.launch is not None:
            line += f"; launch running (pid {self.launch.pid} on {self.launch.host}{self.launch.lease_text()})"
        elif self.expired_lease is not None:
            gone = self.expired_lease
            line += f"; no launch running (pid {gone.pid} on {gone.host} left a lease{gone.lease_text()})"
        return line

    def to_json(self) -> dict:
        return {
            "run": str(self.run_dir),
            "counts": self.counts,
            "steps_done": self.steps_done,
            "steps_total": self.steps_total,
            "launch": None if self.launch is None else dataclasses.asdict(self.launch),
            "expired_lease": None if self.expired_lease is None else dataclasses.asdict(self.expired_lease),
            "splits": [_row_json(r, (self.evaluated or {}).get(r.split)) for r in self.records],
        }


def _row_json(record: SplitRecord, evaluated: dict | None) -> dict:
    row = record.to_row()
    # The guard's score of the best generator, and `ensemble evaluate`'s verdicts once it ran.
    row["quality"] = None if record.quality is None and evaluated is None else {
        "score": record.quality,
        "evaluated_classes": evaluated["classes"] if evaluated else None,
        "ok": evaluated["ok"] if evaluated else None,
        "flagged": {str(k): v for k, v in evaluated["flagged"].items()} if evaluated else None,
    }  # fmt: skip
    for key in ("started_at", "updated_at", "finished_at"):
        row[key] = row[key].isoformat() if row[key] else None
    return row


def read_status(run_dir: str | Path) -> RunStatus:
    run = RunDir(run_dir)
    # Probe first: a launch that ends between the two steps has written its final rows (no
    # `running` ones) by the time they are read. Read first, a launch that finished cleanly
    # in between would have its last `running` rows shown as interrupted.
    run.require()
    with storage_errors(str(run.root)):
        launch, expired = launch_state(run.root)
    records = run.read_manifest()
    if launch is None:
        for record in records:
            if record.status == Status.RUNNING:
                record.status = Status.INTERRUPTED
                record.warning = "its launch is no longer running; `ensemble launch` resumes it"
    evaluated = counts_by_split(read_evaluation(run.root)) or None
    return RunStatus(run.root, records, launch=launch, expired_lease=expired, evaluated=evaluated)
