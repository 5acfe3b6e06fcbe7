"""Who holds a run's launch: what the file lock and the S3 lease both say about the launch
that holds a run, and the one-line refusal a second launch gets."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from manifests.run_dir import RunDirError


class LaunchLockedError(RunDirError):
    """Another launch is running on this run."""


@dataclass(frozen=True)
class LaunchHolder:
    pid: int | None
    host: str | None
    started_at: str | None
    lease_age_s: float | None = None
    """On object storage: seconds since the holder last renewed its lease, and the lease's
    time to live; a lease older than its ttl is expired (its launch is gone)."""
    lease_ttl_s: float | None = None
    lease_holder_exited: bool = False
    """The lease's holder ran on this host and has exited: the lease is over at once."""

    @property
    def live(self) -> bool:
        return self.lease_age_s is None or (self.lease_age_s < self.lease_ttl_s and not self.lease_holder_exited)

    def describe(self) -> str:
        if self.pid is None:
            return "another `ensemble launch`"
        return f"another `ensemble launch` (pid {self.pid} on {self.host}, since {self.started_at})"

    def lease_text(self) -> str:
        """'; lease renewed 4 s ago, live' for a lease; '' for a lock."""
        if self.lease_age_s is None:
            return ""
        if self.lease_holder_exited:
            state = "its process has exited"
        else:
            state = "live" if self.live else f"expired (ttl {self.lease_ttl_s:.0f} s)"
        return f"; lease renewed {self.lease_age_s:.0f} s ago, {state}"


def refusal(run_root: Path, holder: LaunchHolder) -> str:
    return f"{holder.describe()} is running {run_root}; wait for it to end or stop it, then launch again"
