"""Durable timers: callbacks due at a time of the host's clock (`clock.py`), on its event loop.

Timers live in memory only; what makes them durable is the history (`TimerCreated` with `FireAt`),
from which the engine arms them again at start-up. A timer that came due while the host was down
fires at once.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Hashable
from datetime import UTC, datetime
from typing import Any

from .clock import Alarm, Clock

log = logging.getLogger(__name__)


class Scheduler:
    """Keyed one-shot timers; arming a key twice keeps the first (a resumption re-arms timers)."""

    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock or Clock()
        self._handles: dict[tuple[Hashable, ...], Alarm] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def at(
        self,
        when: datetime,
        key: tuple[Hashable, ...],
        callback: Callable[..., Coroutine[Any, Any, Any]],
        *args: Any,
        recurring: bool = False,
    ) -> None:
        """Run `callback(*args)` at `when` (UTC; at once when past). `recurring`: a schedule's next
        occurrence, which a virtual clock fires on its way but never jumps to by itself."""
        if self._closed or key in self._handles:
            return
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        self._handles[key] = self.clock.call_at(when, self._fire, key, callback, args, recurring=recurring)

    def _fire(self, key: tuple[Hashable, ...], callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        self._handles.pop(key, None)
        task = asyncio.get_running_loop().create_task(callback(*args), name=f"timer {key}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("timer callback failed", exc_info=task.exception())

    def cancel(self, key: tuple[Hashable, ...]) -> None:
        """Drop one timer (a cancelled `create_timer`)."""
        handle = self._handles.pop(key, None)
        if handle is not None:
            handle.cancel()

    def cancel_prefix(self, prefix: tuple[Hashable, ...]) -> None:
        """Drop every timer whose key starts with `prefix` (an instance or an execution ended)."""
        for key in [k for k in self._handles if k[: len(prefix)] == prefix]:
            self.cancel(key)

    def running(self) -> bool:
        """Whether a callback (a fired timer's work) is still running (virtual time waits for it)."""
        return bool(self._tasks)

    def pending(self) -> int:
        """How many timers are armed."""
        return len(self._handles)

    def close(self) -> None:
        """Cancel every timer and running callback (the history re-arms them at the next start)."""
        self._closed = True
        for handle in self._handles.values():
            handle.cancel()
        self._handles.clear()
        for task in self._tasks:
            task.cancel()
