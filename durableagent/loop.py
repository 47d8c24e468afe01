"""One long-lived event loop for agent coroutines.

Entity functions are synchronous and may be called on any worker thread. Model clients
keep async resources (HTTP sessions, credentials) bound to the loop that created them,
so every turn runs on this single background loop instead of a fresh `asyncio.run`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

_lock = threading.Lock()
_loop: asyncio.AbstractEventLoop | None = None


def _background_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=loop.run_forever, name="durableagent-loop", daemon=True)
            thread.start()
            _loop = loop
        return _loop


def run_coroutine(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the shared loop and block the calling (worker) thread until it ends."""
    loop = _background_loop()
    try:
        running = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is loop:
        coro.close()
        raise RuntimeError("run_coroutine was called from the agent loop itself")
    return asyncio.run_coroutine_threadsafe(coro, loop).result()


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared loop (started at first use), for callers that schedule work on it themselves."""
    return _background_loop()
