"""The host's one clock: what time it is for everything durable, and waiting for a time.

Durable timers and retry timers (the scheduler), timer triggers (NCRONTAB and TimeSpan schedules),
history timestamps and an episode's `current_utc_datetime`, instance and entity times
(`createdTime`, `lastUpdatedTime`, `lastOperationTime`, which the session TTL sweep compares) all
read `Clock.now()`, and everything that waits for a moment goes through `sleep_until` or `call_at`.
`server.py` makes one and passes it down; the default is the wall clock.

Not on the clock: I/O timeouts and back-off of storage calls, the hub lease (15 s between real
processes), functionTimeout, polling intervals and log durations, which are about real time.

A clock that skips ahead (virtual time) subclasses `Clock`: `now()` returns its own time, and
`call_at` / `sleep_until` keep their sleepers and wake them when it advances; nothing else changes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol


class Alarm(Protocol):
    """A pending `call_at`; `cancel()` drops it (nothing happens if it already ran)."""

    def cancel(self) -> None: ...


class Clock:
    """The wall clock (UTC); the base of any other."""

    def now(self) -> datetime:
        """What time it is (timezone-aware, UTC)."""
        return datetime.now(UTC)

    def call_at(self, when: datetime, callback: Callable[..., Any], *args: Any) -> Alarm:
        """Run `callback(*args)` on the running loop once it is `when` (at once when past)."""
        return asyncio.get_running_loop().call_later(self._delay(when), callback, *args)

    async def sleep_until(self, when: datetime) -> None:
        """Return once it is `when` (at once when past)."""
        await asyncio.sleep(self._delay(when))

    def _delay(self, when: datetime) -> float:
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        return max(0.0, (when - self.now()).total_seconds())
