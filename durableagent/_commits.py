"""Word from a host in this process that it committed an entity's state, with the state it committed,
so a turn that waits on its own host is woken by the commit instead of polling for it.

Why: the run route waits for the reply its entity stores. When the host runs in the same process as
the route (the local host), polling costs a sleep of up to one interval after the commit plus an
HTTP read of the whole state per try (at 1,000 stored messages each read decodes about 150 KB, and
early reads compete with the turn for the CPU). A host that says so (`serve(its rpcBaseUrl)`) calls
`committed` after each commit of an entity's state; a waiter then takes that state as it was
committed (nothing a crash can take back: the write has landed), without a read.

Where no host in this process serves the client's back end (Azure: the Functions host commits in another
process), nothing here is used and turns poll as before. A waiter also keeps a bounded fallback
wait, so a commit it is not told of (by another host process) is still seen.

A host here may also take operations directly (`serve(backend, runner)`): a turn whose caller waits
for the reply hands its operation to the runner instead of signalling through the host's HTTP API.
The runner runs it at once when the entity is idle, storing it as an accepted signal while it runs
(so the signal's write overlaps the turn instead of preceding it), and returns once it is accepted
(stored or committed); it declines (False) otherwise, and the turn signals as before. Its contract
is the signal's: once it returns True the operation is applied exactly once, also across a SIGKILL;
raising BackendUnavailable means it may or may not run (only a keyed retry is safe).
"""

from __future__ import annotations

import asyncio
import threading
import weakref
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any, NamedTuple

Runner = Callable[[str, str, str, Any], Awaitable[bool]]
"""(entity name, key, operation, input) -> accepted (True) or declined (False); see the module docstring."""


class Committed(NamedTuple):
    """One commit of an entity: whether it exists, its state text, and, when the commit applied one
    operation, that operation's result as the entity function returned it (JSON text)."""

    exists: bool
    state: str | None
    result: str | None = None


class Watch:
    """The commits of one entity from the moment it is made: `next` returns the newest commit or
    times out. Made before the signal is sent, so a commit that comes before the caller waits is
    not missed."""

    def __init__(self, feed: CommitFeed, key: tuple[str, str, str]) -> None:
        self._feed = feed
        self._key = key
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()
        self._state: Committed | None = None

    def _committed(self, committed: Committed) -> None:
        """On this watch's loop: keep the newest commit and wake the waiter."""
        self._state = committed
        self._event.set()

    async def next(self, timeout: float) -> Committed | None:
        """The newest commit since the last call, or None after `timeout`."""
        if self._state is None:
            try:
                await asyncio.wait_for(self._event.wait(), timeout)
            except TimeoutError:
                return None
        committed, self._state = self._state, None
        self._event.clear()
        return committed

    def close(self) -> None:
        self._feed._unwatch(self._key, self)


class CommitFeed:
    """Process-wide: the back ends (by `rpcBaseUrl`) a host here serves, and their entities' watches."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._backends: Counter[str] = Counter()
        self._runners: dict[str, Runner] = {}
        self._watches: dict[tuple[str, str, str], weakref.WeakSet[Watch]] = {}

    def serve(self, backend: str, runner: Runner | None = None) -> None:
        """A host in this process commits the entities of the durable back end at `backend` (a client
        binding's `rpcBaseUrl`) and reports each commit; with `runner`, it also takes operations
        directly (`runner`)."""
        with self._lock:
            self._backends[_url(backend)] += 1
            if runner is not None:
                self._runners[_url(backend)] = runner

    def stop(self, backend: str) -> None:
        with self._lock:
            self._backends[_url(backend)] -= 1
            if self._backends[_url(backend)] <= 0:
                del self._backends[_url(backend)]
                self._runners.pop(_url(backend), None)

    def runner(self, backend: str | None) -> Runner | None:
        """How the host serving `backend` in this process takes an operation directly, if it does."""
        if not backend:
            return None
        with self._lock:
            return self._runners.get(_url(backend))

    def served(self, backend: str | None) -> bool:
        return bool(backend) and _url(backend) in self._backends  # type: ignore[union-attr]

    def watch(self, backend: str, name: str, key: str) -> Watch:
        """Watch entity `name`/`key` of `backend` (close it when done; a dropped watch goes by itself)."""
        entity = (_url(backend), name.lower(), key)
        watch = Watch(self, entity)
        with self._lock:
            self._watches.setdefault(entity, weakref.WeakSet()).add(watch)
        return watch

    def committed(
        self, backend: str, name: str, key: str, exists: bool, state: str | None, result: str | None = None
    ) -> None:
        """The host at `backend` committed `state` for entity `name`/`key` (any thread); `result`:
        the result of the one operation the commit applied (None when it applied several)."""
        committed = Committed(exists, state, result)
        entity = (_url(backend), name.lower(), key)
        with self._lock:
            watches = list(self._watches.get(entity, ()))
            if not watches:
                self._watches.pop(entity, None)  # only dropped watches were left
        for watch in watches:
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is watch._loop:
                watch._committed(committed)
            elif not watch._loop.is_closed():
                watch._loop.call_soon_threadsafe(watch._committed, committed)

    def _unwatch(self, entity: tuple[str, str, str], watch: Watch) -> None:
        with self._lock:
            watches = self._watches.get(entity)
            if watches is not None:
                watches.discard(watch)
                if not watches:
                    del self._watches[entity]

    def __len__(self) -> int:
        """Entities watched now (a test checks nothing is kept for entities nobody waits on)."""
        with self._lock:
            return sum(1 for watches in self._watches.values() if watches)


def _url(backend: str) -> str:
    return backend.rstrip("/").lower()


COMMITS = CommitFeed()
"""The process's feed: the local host serves it, turns read it."""
