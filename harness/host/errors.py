"""The error that stops a start with one line: the bottom of the host's layers.

Kept apart from the loader so that storage and settings can raise it without importing the app
loader (which sits above them).
"""

from __future__ import annotations


class AppLoadError(RuntimeError):
    """The app could not be imported or indexed, or the host cannot serve it as configured (a user
    error, reported in one line without a long traceback; the host exits 2)."""
