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


def recipe_options(preset: str | None, steps: int | None, overrides: list[str] | None) -> list[str]:
    """`ensemble launch` options for what a benchmark was told (--preset, --steps, --set
    FIELD=VALUE ...); nothing for what it was not, so that the launch keeps its own defaults."""
    return [*(["--preset", preset] if preset else []), *(["--steps", str(steps)] if steps else []),
            *(a for pair in overrides or [] for a in ("--set", pair))]  # fmt: skip
