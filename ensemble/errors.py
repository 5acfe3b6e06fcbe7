"""Errors that mean "the input is wrong", each with a message that says what to do.

The CLI turns every one of these into a one-line message and a non-zero exit code.
"""
from __future__ import annotations

from manifests.run_dir import RunDirError


class EnsembleError(Exception):
    """Bad input or a state the user can fix: the message names the problem and the remedy."""


class Interrupted(EnsembleError):
    """Ctrl-C during a launch: tasks stopped, manifest written, resumable."""


def user_errors() -> tuple[type[Exception], ...]:
    """Every exception type whose message is meant for the user, not a traceback.

    Dataset and checkpoint errors live in workers/, which imports torch; they are added
    only when already imported, so that light commands stay light.
    """
    import sys

    types: list[type[Exception]] = [EnsembleError, RunDirError]
    for module, name in (("workers.datasets.errors", "DatasetError"), ("workers.checkpoints", "CheckpointError")):
        if module in sys.modules:
            types.append(getattr(sys.modules[module], name))
    return tuple(types)
