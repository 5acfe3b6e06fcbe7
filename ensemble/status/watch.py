"""`ensemble status --watch`: the status, redrawn every few seconds while a launch runs.

On a terminal the screen is redrawn in place (like `watch`); into a pipe or file each refresh
is a new block (or, with --json, a new line: one JSON object per refresh). It ends by itself
once no launch holds the run and no split is running, and on Ctrl-C, both with exit code 0.
Like `status`, it imports neither torch nor Ray."""
from __future__ import annotations

import datetime as dt
import sys
import time
from typing import Callable, TextIO

from ensemble.errors import EnsembleError
from ensemble.status.read import RunStatus, read_status
from manifests.tables.manifest import Status

CLEAR = "\x1b[H\x1b[2J"
"""Cursor home, then clear the screen."""
MIN_INTERVAL_S = 0.2


def watch_status(run_dir: str, interval: float, draw: Callable[[RunStatus], str], in_place: bool | None = None,
                 out: TextIO | None = None) -> int:  # fmt: skip
    """Draw the run's status every `interval` seconds; returns the exit code (0)."""
    if not interval >= MIN_INTERVAL_S:
        raise EnsembleError(f"--interval must be at least {MIN_INTERVAL_S} seconds, got {interval:g}")
    out = out or sys.stdout
    in_place = out.isatty() if in_place is None else in_place
    try:
        while True:
            status = read_status(run_dir)
            block = draw(status)
            if in_place:
                stamp = dt.datetime.now().strftime("%H:%M:%S")
                out.write(f"{CLEAR}Every {interval:g} s: ensemble status --run {status.run_dir}    {stamp}  "
                          f"(Ctrl-C to stop)\n\n{block}\n")  # fmt: skip
            else:
                out.write(block + "\n")
            out.flush()
            if status.launch is None and not status.counts.get(Status.RUNNING):
                return 0  # nothing will change until someone launches again
            time.sleep(interval)
    except KeyboardInterrupt:
        return 0
