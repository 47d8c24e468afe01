"""What time it is for the library's own stamps and expiry checks.

Everything the library dates or expires by (history entries' `timestamp`, a session's idle time for
`session_ttl`, the session index and sweeps, reply-stream `expires`, `forked_at`, a signal's
`requestTime`) reads `utc_now()`. On Azure that is the wall clock. A host that runs the app in its
own process with a clock of its own (the harness's local host in virtual time) hands it over with
`use_time_source`, so that the app's stamps agree with the platform's (`current_utc_datetime`,
`lastOperationTime`) without any change to the app. Timeouts and polling intervals are about real
waiting and stay on `time.monotonic()`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

__all__ = ["use_time_source", "utc_now"]

_source: Callable[[], datetime] | None = None


def utc_now() -> datetime:
    """Now, timezone-aware UTC: the host's clock when one was handed over, else the wall clock."""
    return _source() if _source is not None else datetime.now(UTC)


def use_time_source(source: Callable[[], datetime] | None) -> None:
    """Read time from `source` from now on (None: the wall clock again). For a host process only."""
    global _source
    _source = source
