"""The `ensemble` command as a user runs it: the console script installed next to the Python
running this (its virtual environment need not be activated). The benchmarks and the tests
that run it as a process use it."""
from __future__ import annotations

import sys
from pathlib import Path


def installed_command() -> list[str]:
    """How to run this CLI as a user would, from the running interpreter: the `ensemble`
    script installed beside it (its virtual environment need not be activated), else the
    module. Used by the benchmarks and the tests that run it as a process."""
    import shutil

    script = shutil.which("ensemble", path=str(Path(sys.executable).parent))
    return [script] if script else [sys.executable, "-m", "cli"]


ENSEMBLE = installed_command()
"""A command line to extend: [*ENSEMBLE, "status", ...]."""
