"""The `ensemble` command the benchmarks run, as a user would: the console script installed
next to the Python running them (a virtual environment need not be activated)."""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

ENSEMBLE = shutil.which("ensemble", path=str(Path(sys.executable).parent)) or shutil.which("ensemble") or "ensemble"
