"""One worker task per key (an entity, an orchestration instance), shared by both dispatchers.

A worker runs `step(key)` under the key's lock while steps make progress or new work woke it, then
ends; `wake(key)` starts one when none runs. Steps never overlap for one key, while different keys
run concurrently. A storage failure or a concurrent change is retried with `tables.Backoff`, and the
key is marked `unknown` so that the next step asks storage what it holds (memory may have missed
something). A worker in back-off is woken as soon as new work for it is accepted.

Also here: what keeps a hung function from wedging the host. `within` bounds a call by host.json's
functionTimeout, and `DaemonThreadPool` runs sync functions on threads that a call given up on
(timed out, its instance terminated, the host stopping) stops occupying: the pool starts another
thread for the work behind it, and its threads are daemons that the interpreter does not join at exit.
Python cannot stop a thread, so a hung call runs on in its own until it returns, as on Azure, where
the worker process is recycled instead.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, TypeVar

from .storage.tables import RETRIABLE, Backoff, StorageUnavailable

log = logging.getLogger(__name__)

T = TypeVar("T")


class FunctionTimeoutError(Exception):
    """A function ran longer than functionTimeout (Azure's FunctionTimeoutException)."""


def format_timespan(seconds: float) -> str:
    """`seconds` as host.json writes a TimeSpan (`hh:mm:ss`, `d.hh:mm:ss` from a day on)."""
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    text = f"{rest // 3600:02d}:{rest % 3600 // 60:02d}:{rest % 60:02d}"
    if seconds != whole:
        text += f"{seconds - whole:.3f}"[1:].rstrip("0")
    return f"{days}.{text}" if days else text


def timeout_message(function: str, seconds: float) -> str:
    """The Functions host's words for a timed-out function (WebJobs' FunctionTimeoutException)."""
    return f"Timeout value of {format_timespan(seconds)} was exceeded by function: Functions.{function}"


async def within(timeout: float | None, work: Awaitable[T], function: str) -> T:
    """Await `work` for at most `timeout` seconds (None: unbounded), else FunctionTimeoutError.

    On expiry, or when the caller is cancelled, `work` is cancelled and not waited for: a function
    that ignores cancellation must not hold its caller too. Cancelling a sync function's executor
    future makes a `DaemonThreadPool` stop counting its thread. Real seconds, never the host's
    `Clock` (functionTimeout bounds a real process's work, also under virtual time).
    """
    task = asyncio.ensure_future(work)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout)
    except asyncio.CancelledError:
        _abandon(task)
        raise
    if not done:
        _abandon(task)
        raise FunctionTimeoutError(timeout_message(function, timeout or 0.0))
    return task.result()


def _abandon(task: asyncio.Future[Any]) -> None:
    task.cancel()
    # Whatever it ends with later is not anybody's business any more (and must not be logged as
    # a never-retrieved exception).
    task.add_done_callback(lambda t: t.cancelled() or t.exception())


class _Call(Future):  # type: ignore[type-arg]
    """A pool call whose cancellation, once it runs, gives its thread up (see `DaemonThreadPool`)."""

    def __init__(self, pool: DaemonThreadPool) -> None:
        super().__init__()
        self._pool = pool

    def cancel(self) -> bool:
        if super().cancel():
            return True
        self._pool.give_up(self)
        return False


class _Worker:
    """One pool thread; `counted` until the call it runs is given up."""

    def __init__(self) -> None:
        self.counted = True


class DaemonThreadPool(ThreadPoolExecutor):
    """A thread pool of at most `max_workers` counted threads; a running call that is cancelled (given
    up: timed out, terminated, shutting down) frees its place.

    asyncio cancels the executor future of a cancelled `run_in_executor` await; the pool then stops
    counting the thread that runs it (the call runs on; the thread ends when it returns) and starts
    another for waiting work. Threads are daemons and not registered with concurrent.futures' exit
    hook, so a hung one never keeps the process from exiting.

    A ThreadPoolExecutor only by type (asyncio takes nothing else as a loop's default executor): it
    shares none of its machinery, so its constructor is not called.
    """

    def __init__(self, max_workers: int, thread_name_prefix: str = "pool") -> None:
        self._max = max(1, max_workers)
        self._prefix = thread_name_prefix
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._queue: collections.deque[tuple[_Call, Callable[..., Any], tuple[Any, ...], dict[str, Any]]]
        self._queue = collections.deque()
        self._running: dict[_Call, _Worker] = {}
        self._counted = 0  # threads that count against max_workers
        self._idle = 0
        self._serial = 0
        self._shutdown = False

    @property
    def counted(self) -> int:
        """Threads that count against max_workers (tests, diagnostics)."""
        return self._counted

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new calls after shutdown")
            call = _Call(self)
            self._queue.append((call, fn, args, kwargs))
            if len(self._queue) > self._idle and self._counted < self._max:
                self._start_thread()
            self._ready.notify()
            return call

    def give_up(self, call: _Call) -> None:
        """`call` runs and nobody waits for it any more: its thread no longer counts."""
        with self._lock:
            worker = self._running.get(call)
            if worker is None or not worker.counted:
                return
            worker.counted = False
            self._counted -= 1
            if len(self._queue) > self._idle and self._counted < self._max and not self._shutdown:
                self._start_thread()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Stop taking calls; the threads end once the queue is empty (never joined: they are daemons,
        and `wait` only waits for calls that have not been given up)."""
        with self._lock:
            self._shutdown = True
            if cancel_futures:
                while self._queue:
                    self._queue.popleft()[0].cancel()
            self._ready.notify_all()
            running = [call for call, worker in self._running.items() if worker.counted]
        if wait:
            for call in running:
                try:
                    call.exception()
                except BaseException:  # cancelled: nothing to wait for
                    pass

    def _start_thread(self) -> None:
        """Under the lock."""
        self._serial += 1
        self._counted += 1
        worker = _Worker()
        thread = threading.Thread(
            target=self._work, args=(worker,), name=f"{self._prefix}_{self._serial}", daemon=True
        )
        thread.start()

    def _work(self, worker: _Worker) -> None:
        while True:
            with self._lock:
                while not self._queue and not self._shutdown:
                    self._idle += 1
                    self._ready.wait()
                    self._idle -= 1
                if not self._queue:  # shut down
                    self._counted -= 1
                    return
                call, fn, args, kwargs = self._queue.popleft()
                self._running[call] = worker
            if call.set_running_or_notify_cancel():
                try:
                    result = fn(*args, **kwargs)
                except BaseException as exc:
                    call.set_exception(exc)
                else:
                    call.set_result(result)
            with self._lock:
                self._running.pop(call, None)
                if not worker.counted:
                    return  # given up on: a replacement took its place


class KeyedLocks:
    """One asyncio.Lock per key while a task holds or waits for it, forgotten as soon as none does, so
    that a host seeing many short-lived keys does not keep a lock for each forever.

    Counting the holders and waiters (rather than asking the lock) decides when to forget it without a
    race: a task that took the lock from the map counts as a user before it can yield.
    """

    def __init__(self) -> None:
        self._locks: dict[str, asyncio.Lock] = {}
        self._users: dict[str, int] = {}

    def __len__(self) -> int:
        return len(self._locks)

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        """Hold `key`'s lock for the block."""
        lock = self._locks.get(key)
        if lock is None:
            lock = self._locks[key] = asyncio.Lock()
        self._users[key] = self._users.get(key, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[key] -= 1
            if not self._users[key]:
                del self._users[key]
                del self._locks[key]


class KeyedWorkers:
    """Base of the entity dispatcher and the orchestration engine.

    Per-key state lives only while the key is busy: its lock while held or awaited (`KeyedLocks`),
    its worker and back-off while the worker runs; subclasses forget theirs in `_worker_ended`.
    """

    label = "worker"
    gate: Callable[[], str | None] | None = None  # why no step may run now (the hub's lease is lost)

    def __init__(self) -> None:
        self._workers: dict[str, asyncio.Task[None]] = {}
        self._wake: set[str] = set()
        self._locks = KeyedLocks()
        self._backoffs: dict[str, Backoff] = {}  # of the running workers
        self._unknown: set[str] = set()  # keys whose next step must ask storage
        self._closing = False

    def lock(self, key: str) -> AbstractAsyncContextManager[None]:
        """The lock held while `key` takes a step (and by whatever must not overlap one)."""
        return self._locks.hold(key)

    def held_keys(self) -> dict[str, int]:
        """How many keys each per-key map holds (diagnostics, and tests that they shrink back)."""
        return {
            "locks": len(self._locks),
            "workers": len(self._workers),
            "backoffs": len(self._backoffs),
            "wake": len(self._wake),
        }

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

    def busy(self) -> bool:
        """Whether a worker runs (a virtual clock moves only while none does)."""
        return bool(self._workers)

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
