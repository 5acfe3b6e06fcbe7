"""The coordinator's errors that mean "the input is wrong", each with a message that says what to do.

The CLI turns every UserError (manifests/errors.py) into a one-line message and a non-zero exit code.
"""
from __future__ import annotations

from manifests.errors import UserError


class EnsembleError(UserError):
    """Bad input or a state the user can fix: the message names the problem and the remedy."""


class Interrupted(EnsembleError):
    """Ctrl-C during a launch: tasks stopped, manifest written, resumable."""
