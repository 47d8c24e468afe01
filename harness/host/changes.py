"""In-process notification that a key changed, for the host's own waits (an instance API request that
waits for its instance to finish): a waiter wakes when the change is committed instead of polling.

A waiter watches the key before it reads what it waits on, so a change between the read and the
wait is not missed. The wait stays bounded (the caller's fallback interval), so a change made by
another process sharing the storage (the host is the only writer of its hub, but nothing else
relies on that here) is still seen. An event exists per key only while someone waits on it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager


class KeyedChanges:
    """One asyncio.Event per watched key, set by `changed(key)`."""

    def __init__(self) -> None:
        self._events: dict[str, asyncio.Event] = {}
        self._watchers: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._events)

    def changed(self, key: str) -> None:
        """`key` changed: wake its watchers (each watches again for the next change)."""
        event = self._events.pop(key, None)
        if event is not None:
            event.set()

    @contextmanager
    def watch(self, key: str) -> Iterator[asyncio.Event]:
        """The event the next change of `key` sets; watch before reading, then wait on it."""
        event = self._events.get(key)
        if event is None:
            event = self._events[key] = asyncio.Event()
        self._watchers[key] = self._watchers.get(key, 0) + 1
        try:
            yield event
        finally:
            self._watchers[key] -= 1
            if not self._watchers[key]:
                del self._watchers[key]
                if self._events.get(key) is event:
                    del self._events[key]
