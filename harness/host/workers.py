"""One worker task per key (an entity, an orchestration instance), shared by both dispatchers.

A worker runs `step(key)` under the key's lock while steps make progress or new work woke it, then
ends; `wake(key)` starts one when none runs. Steps never overlap for one key, while different keys
run concurrently. A storage failure or a concurrent change is retried with `tables.Backoff`, and the
key is marked `unknown` so that the next step asks storage what it holds (memory may have missed
something). A worker in back-off is woken as soon as new work for it is accepted.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from .tables import RETRIABLE, Backoff, StorageUnavailable

log = logging.getLogger(__name__)


class KeyedWorkers:
    """Base of the entity dispatcher and the orchestration engine."""

    label = "worker"
    gate: Callable[[], str | None] | None = None  # why no step may run now (the hub's lease is lost)

    def __init__(self) -> None:
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wake: set[str] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        self._backoffs: dict[str, Backoff] = {}  # of the running workers
        self._unknown: set[str] = set()  # keys whose next step must ask storage
        self._closing = False

    def lock(self, key: str) -> asyncio.Lock:
        """The lock held while `key` takes a step (and by whatever must not overlap one)."""
        return self._locks.setdefault(key, asyncio.Lock())

    def wake(self, key: str) -> None:
        """Work for `key` was accepted: run its worker (or cut its back-off short)."""
        if self._closing:
            return
        self._wake.add(key)
        if key in self._backoffs:
            self._backoffs[key].kick.set()
        if key not in self._workers:
            self._workers[key] = asyncio.get_running_loop().create_task(
                self._run(key), name=f"{self.label} {key}"
            )

    async def idle(self) -> None:
        """Wait until no worker runs (tests and shutdown)."""
        while self._workers:
            await asyncio.gather(*list(self._workers.values()), return_exceptions=True)

    async def _stop_workers(self, *others: asyncio.Task[object]) -> None:
        """Cancel the workers (and `others`); what they had not done stays in storage."""
        self._closing = True
        tasks = [*self._workers.values(), *others]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def step(self, key: str) -> bool:
        """Do the next piece of work for `key`; True when anything changed."""
        raise NotImplementedError

    def _worker_ended(self, key: str) -> None:
        """Forget per-worker state (subclasses that keep some)."""

    async def _run(self, key: str) -> None:
        backoff = self._backoffs[key] = Backoff()
        try:
            while True:
                self._wake.discard(key)
                try:
                    if self.gate is not None and (problem := self.gate()):
                        raise StorageUnavailable(problem)
                    async with self.lock(key):
                        progressed = await self.step(key)
                    backoff.reset()
                except RETRIABLE as exc:
                    self._unknown.add(key)
                    await backoff.after(exc, f"{self.label} {key}")
                    continue
                if not progressed and key not in self._wake:
                    break
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s %s failed", self.label, key)
            self._unknown.add(key)  # whatever it held in memory may be stale now
        finally:
            self._workers.pop(key, None)
            self._backoffs.pop(key, None)
            self._worker_ended(key)
            if key in self._wake and not self._closing:
                self.wake(key)  # work arrived while this worker was ending: start over
