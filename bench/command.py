"""The `ensemble` command the benchmarks run, as a user would: the console script installed
next to the Python running them (a virtual environment need not be activated)."""
from __future__ import annotations

from cli import installed_command

ENSEMBLE = installed_command()
"""A command line to extend: [*ENSEMBLE, "status", ...]."""
