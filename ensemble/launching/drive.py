"""The coordinator's loop once tasks are submitted: fold worker progress and task results into
the manifest (written at most once a MANIFEST_WRITE_INTERVAL_S, and when a task ends), retry
flagged splits with fresh seeds, and stop cleanly on Ctrl-C, SIGTERM or a lost lease."""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

from ensemble.errors import EnsembleError, Interrupted
from ensemble.launching.listener import LaunchListener
from ensemble.launching.rows import apply_failure, apply_progress, apply_result
from manifests.run_dir import LaunchTakenOver, RunDir
from manifests.tables.manifest import SplitRecord, Status

MANIFEST_WRITE_INTERVAL_S = 1.0


@dataclass
class Launch:
    """A launch in flight: its run and rows, the board its workers report to, the tasks still
    pending ({ray ref: split id}), and how to submit a split again."""

    run: RunDir
    records: list[SplitRecord]
    board: object
    """The ProgressBoard actor (ensemble/launching/board.py)."""
    listener: LaunchListener
    submit: Callable[[SplitRecord], object]
    """Submits a split's next attempt and returns its ray ref."""
    may_retry: Callable[[SplitRecord], bool] = lambda record: False
    """Whether a flagged split may have one more seed (and records it when so)."""
    pending: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.by_split = {r.split: r for r in self.records}

    def start(self, todo: list[SplitRecord]) -> None:
        for record in todo:
            self.pending[self.submit(record)] = record.split

    def drive(self, stop: threading.Event, lease_lost: threading.Event) -> None:
        """Fold worker progress and task results into the manifest until no task is left."""
        import ray

        last_write, dirty = time.monotonic(), False
        while self.pending:
            if stop.is_set():
                raise KeyboardInterrupt
            if lease_lost.is_set():  # another launch owns the run now: write nothing more
                self._lost_lease()
            ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=1.0)
            dirty = self.drain() or dirty
            for ref in ready:
                self._finish(ref)
                dirty = True
            now = time.monotonic()
            if dirty and (not self.pending or ready or now - last_write >= MANIFEST_WRITE_INTERVAL_S):
                try:
                    self.run.write_manifest(self.records)
                except LaunchTakenOver:  # the lease lapsed, or another launch wrote the manifest
                    self._lost_lease()
                last_write, dirty = now, False
            self.listener.updated(self.records)

    def _finish(self, ref) -> None:
        """A task ended: its result or failure into its row, or the split submitted again."""
        import ray

        record = self.by_split[self.pending.pop(ref)]
        try:
            result = ray.get(ref)
        except ray.exceptions.RayError as exc:
            apply_failure(record, exc)
        else:
            apply_result(record, result, self.run)
            if result.flags and self.may_retry(record):
                self.pending[self.submit(record)] = record.split
                record.status, record.finished_at = Status.RUNNING, None
                self.listener.retrying(record)
                return
        self.listener.finished(record)

    def drain(self, timeout: float | None = None) -> bool:
        """Fold the board's reports into the rows; True when there were any."""
        import ray

        drained = ray.get(self.board.drain.remote(), timeout=timeout)
        for split, reports in drained.items():
            apply_progress(self.by_split[split], reports, self.run)
        return bool(drained)

    def _lost_lease(self) -> None:
        import ray

        for ref in self.pending:
            ray.cancel(ref, force=True)
        raise EnsembleError(
            f"this launch lost its lease on {self.run.root} (it could not renew it in time and another launch "
            f"took the run over); its tasks were stopped, and the other launch carries on"
        )

    def interrupt(self) -> None:
        """Ctrl-C or SIGTERM: cancel the tasks, record how far they got as interrupted, and raise
        Interrupted (the CLI's exit code 130)."""
        import ray

        for ref in self.pending:
            ray.cancel(ref, force=True)
        with contextlib.suppress(Exception):  # Ctrl-C reaches Ray's processes too; the write comes first
            self.drain(timeout=2.0)  # the steps reached, for the record
        for split in self.pending.values():
            self.by_split[split].status = Status.INTERRUPTED
        self.run.write_manifest(self.records)
        raise Interrupted(
            f"interrupted: {len(self.pending)} split(s) stopped, their checkpoints kept; "
            f"resume with `ensemble launch --run {self.run.root}`"
        ) from None


@contextlib.contextmanager
def stop_signals():
    """Ctrl-C (SIGINT) and SIGTERM (`kill`, a scheduler or Kubernetes stopping the pod) both
    stop a launch: tasks cancelled, manifest written, resumable. Installed after ray.init,
    whose own SIGTERM handler would otherwise exit at once. The handler raises
    KeyboardInterrupt and also sets the yielded flag, which Launch.drive checks every turn:
    an interrupt raised while Ray's own code runs may be caught there, the flag is not.
    Only the main thread may set handlers."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def interrupt(signum, frame):
        stop.set()
        raise KeyboardInterrupt

    previous = {sig: signal.signal(sig, interrupt) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
