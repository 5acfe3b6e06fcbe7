"""Where every split of a run stands, read from its manifest. Imports neither torch nor Ray."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from manifests.run_dir import RunDir
from manifests.schema import SplitRecord, count_by_status


@dataclass(frozen=True)
class RunStatus:
    run_dir: Path
    records: list[SplitRecord]

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
        return f"{len(self.records)} splits: {counts}; {percent:.0f}% of steps done"

    def to_json(self) -> dict:
        return {
            "run": str(self.run_dir),
            "counts": self.counts,
            "steps_done": self.steps_done,
            "steps_total": self.steps_total,
            "splits": [_row_json(r) for r in self.records],
        }


def _row_json(record: SplitRecord) -> dict:
    row = record.to_row()
    for key in ("started_at", "updated_at", "finished_at"):
        row[key] = row[key].isoformat() if row[key] else None
    return row


def read_status(run_dir: str | Path) -> RunStatus:
    run = RunDir(run_dir)
    return RunStatus(run.root, run.read_manifest())
