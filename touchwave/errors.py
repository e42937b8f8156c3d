"""Errors that reach people.

A `UserError` is a mistake the person can fix (a bad file, a bad flag, an unreachable
database): the CLI prints its message and exits 2, the API answers 4xx. Anything else
is a bug in touchwave and keeps its traceback.
"""

from __future__ import annotations


class UserError(Exception):
    """A mistake in input or configuration, reported without a traceback."""


class StoreUnavailable(UserError):
    """The configured database cannot be reached or is not migrated."""
