"""The base of every error whose message is meant for the user, and how such messages are cut.

It lives at the bottom of the import graph (manifests/ imports nothing of the project and
workers/ imports manifests/), so every layer can derive its domain errors from `UserError`
and the CLI can catch them all by this one class, without importing torch to name them.
"""
from __future__ import annotations


class UserError(Exception):
    """Bad input or a state the user can fix: the message names the problem and the remedy.
    The CLI prints it as one line with a non-zero exit code, never a traceback."""


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first non-blank line of an exception's message, at most `limit` characters
    ("" for an empty message): libraries raise multi-line texts that a one-line error quotes."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0][:limit] if lines else ""


def last_line(exc: BaseException, limit: int = 200) -> str:
    """The last non-blank line: where a remote traceback ends with the error itself."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1][:limit] if lines else ""
