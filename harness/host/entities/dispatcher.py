"""Entity dispatch: one worker per entity applies its persisted signals in order, in batches.

Different entities run concurrently; operations on one entity never overlap. The entity function is
the SDK's own handler (sync), run in a thread pool with the Functions JSON protocol. A batch that runs
longer than functionTimeout fails like one that crashes the handler: it is retried one signal at a
time, and the signal that times out alone is dropped (its caller gets the timeout as the error).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from datetime import datetime
from typing import Any, Protocol

import azure.functions as func
from azure.core.exceptions import ResourceExistsError

from ..loader import EntityFunction
from ..scheduler import Scheduler
from ..storage.tables import RETRIABLE, Backoff, StorageUnavailable
from ..workers import KeyedWorkers, within
from . import locks
from .store import (
    HELD_INPUT_CHARS,
    MAX_BATCH,
    ConcurrencyConflict,
    EntityRecord,
    EntityStore,
    PendingSignal,
    instance_id,
    invalid_key_reason,
    new_signal_key,
)

log = logging.getLogger(__name__)

LOCKED_SCAN = 5000  # pending signals a locked entity reads to find its lock holder's among the others


def build_request(name: str, key: str, exists: bool, state: str | None, batch: list[PendingSignal]) -> str:
    """The JSON the Functions host hands an entity function.

    Each signal's `input` is the JSON text of the token the client posted; the Python client posts the
    JSON text of its value encoded once more, so inputs arrive double-encoded as the SDK expects.
    """
    return json.dumps(
        {
            "self": {"name": name, "key": key},
            "exists": exists,
            "state": state,
            "batch": [{"name": s.operation, "input": s.input, "isSignal": not s.call} for s in batch],
        }
    )


def split_instance_id(iid: str) -> tuple[str, str]:
    """`@name@key` -> (name, key); keys may contain '@'."""
    _, name, key = iid.split("@", 2)
    return name, key


class RemoteEntities(Protocol):
    """Runs entity batches somewhere else (the sidecar's connected workers) instead of the app's
    entity functions: same input as `build_request`, and a response of the same shape as the SDK's
    (`results` of `{"isError", "result"}`, `entityExists`, `entityState`, `signals`)."""

    async def entity_batch(
        self, iid: str, exists: bool, state: str | None, batch: list[PendingSignal]
    ) -> dict[str, Any]:
        """Apply `batch` to the entity; raises when the batch as a whole failed."""
        ...


class EntityDispatcher(KeyedWorkers):
    """Owns the per-entity workers and the per-entity locks that also serialise purges."""

    label = "entity"

    def __init__(
        self,
        store: EntityStore,
        entities: dict[str, EntityFunction],
        executor: Executor,
        timeout: float | None = None,
        remote: RemoteEntities | None = None,
    ) -> None:
        """`timeout`: host.json's functionTimeout in seconds for one batch (None: unbounded);
        `remote`: runs the batches instead of the app's entity functions."""
        super().__init__()
        self.remote = remote
        self.timeout = timeout
        self.store = store
        self.entities = entities
        self.executor = executor
        # Signals this process accepted and has not applied yet, per entity. They are also in
        # storage (accepted = persisted); keeping them here spares a storage query per apply.
        # Entities in `_unknown` may have signals only storage knows of (left by an earlier run,
        # or after a failure), so their next apply reads storage and merges.
        self._accepted: dict[str, dict[str, PendingSignal]] = {}
        # While a signal crashes the entity handler: the batch size being tried (1 isolates the
        # signal), and the signal to drop once isolated.
        self._batch_sizes: dict[str, int] = {}
        self._poison: dict[str, _BatchFailed] = {}
        # Where answers to orchestrations' calls and signals go (the orchestration engine sets it):
        # called with (parent instance, its execution, request id, response JSON) BEFORE the batch
        # commits, so an answer is never lost; a repeat (the batch re-applied after a crash) is
        # dropped by the instance.
        self.respond: Callable[[str, str, str, str], Awaitable[None]] | None = None
        # Told of each commit of an entity's state, with that state (name, key, exists, state text,
        # and the result of a batch of one operation): the app's turns in this process wait on it
        # instead of polling (durableagent's `_commits`).
        self.committed: Callable[[str, str, bool, str | None, str | None], None] | None = None
        # Operations run at once on an idle entity (`accept_inline`), by entity.
        self._inline: dict[str, asyncio.Task[None]] = {}
        # Starts an orchestration an entity asked for (name, instance id, input, scheduled time, the
        # execution id to give it); the orchestration engine sets it. Called after the batch commits.
        self.start: Callable[[str, str, str | None, datetime | None, str], Awaitable[None]] | None = None
        # The timers of scheduled signals (the orchestration engine lends its own, on the host's clock).
        self.scheduler: Scheduler | None = None

    def notify(self, iid: str, signal: PendingSignal | None = None) -> None:
        """A signal for `iid` was persisted (None: maybe several, ask storage): run its worker."""
        if self._closing:
            return
        if signal is None:
            self._unknown.add(iid)
        else:
            self._accepted.setdefault(iid, {})[signal.row_key] = signal
        self.wake(iid)

    async def resume(self) -> int:
        """Start workers for every entity with signals left over from a previous run, and arm the
        timers of the scheduled signals (those due while the host was down are queued at once)."""
        ids = await self.store.instances_with_signals()
        for iid in sorted(ids):
            self.notify(iid)
        for iid, row_key, due in await self.store.scheduled_signals():
            self._arm(iid, row_key, due)
        await self._redo_outboxes()
        return len(ids)

    async def schedule(
        self,
        name: str,
        key: str,
        operation: str,
        input_text: str | None,
        due: datetime,
        row_key: str | None = None,
    ) -> None:
        """Accept a signal to apply at `due` (stored first; queued for the entity when it is due)."""
        stored = await self.store.add_scheduled_signal(name, key, operation, input_text, due, row_key)
        self._arm(instance_id(name, key), stored, due)

    def _arm(self, iid: str, row_key: str, due: datetime) -> None:
        if self.scheduler is None:  # pragma: no cover - the engine always lends its scheduler
            raise RuntimeError("scheduled signals need the engine's scheduler")
        self.scheduler.at(due, (iid, row_key), self._release, iid, row_key)

    async def _release(self, iid: str, row_key: str) -> None:
        signal = await self.store.release_scheduled(iid, row_key)
        if signal is not None:
            self.notify(iid, signal)

    async def close(self) -> None:
        """Stop the workers; unapplied signals stay persisted for the next start."""
        await self._stop_workers(*self._inline.values())

    def busy(self) -> bool:
        return super().busy() or bool(self._inline)

    async def idle(self) -> None:
        while self._workers or self._inline:
            await asyncio.gather(*self._workers.values(), *self._inline.values(), return_exceptions=True)

    async def step(self, iid: str) -> bool:
        """Apply the next batch of `iid`'s signals (isolating and dropping one that crashes the
        entity handler itself, which is not an operation error)."""
        poison = self._poison.pop(iid, None)
        if poison is not None:
            await self._drop(iid, poison)
        size = self._batch_sizes.get(iid, MAX_BATCH)
        try:
            applied = await self._apply_once(iid, size)
        except _BatchFailed as exc:
            if size > 1:
                self._batch_sizes[iid] = 1
            else:
                self._poison[iid] = exc
            return True
        self._batch_sizes.pop(iid, None)
        return applied > 0

    def _worker_ended(self, iid: str) -> None:
        self._batch_sizes.pop(iid, None)
        self._poison.pop(iid, None)
        if not self._accepted.get(iid):
            self._accepted.pop(iid, None)

    def held_keys(self) -> dict[str, int]:
        """The base's counts, and the entities with signals in memory or a batch being isolated."""
        sizes = {"accepted": len(self._accepted), "batch_sizes": len(self._batch_sizes)}
        return {**super().held_keys(), **sizes, "poison": len(self._poison)}

    async def _drop(self, iid: str, failed: _BatchFailed) -> None:
        """Remove a signal that crashes the entity handler, keeping the state as it is."""
        log.error("entity %s: dropping signal %s that crashes the handler: %s", iid, failed.row, failed)
        before = await self.store.read(iid)
        name, key = split_instance_id(iid)
        exists = before is not None and before.exists
        await self._answer_failed(failed.signals, f"the entity function crashed: {failed}")
        await self.store.commit(before, name, key, exists, before.state if before else None, failed.signals)
        self._forget(iid, failed.signals)

    async def _pending(self, iid: str, limit: int) -> list[PendingSignal]:
        """The oldest pending signals of `iid`, from memory unless storage may know more."""
        accepted = self._accepted.get(iid, {})
        if iid in self._unknown:
            stored = await self.store.pending(iid, limit)
            if len(stored) < limit:
                self._unknown.discard(iid)  # storage had them all; memory has every later one
            # A commit that failed with an unclear outcome (a timeout) may have landed: what the
            # stored state lists as applied is not applied again.
            record = await self.store.read(iid)
            for row_key in record.applied if record is not None else ():
                accepted.pop(row_key, None)
            # Likewise an operation the row held (`accept_inline`) and no longer holds: committed.
            still_held = record.held.row_key if record is not None and record.held else None
            for row_key, signal in list(accepted.items()):
                if signal.held and row_key != still_held:
                    accepted.pop(row_key)
            merged = {s.row_key: s for s in stored} | accepted
            return [merged[k] for k in sorted(merged)][:limit]
        return [accepted[k] for k in sorted(accepted)][:limit]

    def discard(self, iid: str) -> None:
        """The entity was purged (signals included): forget what was queued for it."""
        self._accepted.pop(iid, None)
        self._unknown.discard(iid)

    def _forget(self, iid: str, applied: list[PendingSignal]) -> None:
        accepted = self._accepted.get(iid, {})
        for signal in applied:
            accepted.pop(signal.row_key, None)
        if not accepted:
            self._accepted.pop(iid, None)

    async def _apply_once(self, iid: str, limit: int) -> int:
        """Apply up to `limit` pending signals; returns how many were applied. A lock or unlock
        (`locks.py`) is applied alone; while the entity is locked, only the messages of the
        orchestration holding the lock are, and unlocks (the others wait, in order)."""
        held = await self.store.read(iid)
        owner = held.lock_owner if held is not None and held.locked_by else None
        signals = await self._pending(iid, LOCKED_SCAN if owner else limit)
        if owner is not None:  # an unlock never waits: another section's only marks it released
            signals = [s for s in signals if s.parent == owner or s.control == "unlock"]
        if not signals:
            return 0
        if signals[0].control:
            return await self._control(iid, held, signals[0])
        signals = list(itertools.takewhile(lambda s: not s.control, signals))[:limit]
        name, key = split_instance_id(iid)
        if invalid_key_reason(name, key) is not None:
            log.error("entity %s: invalid id, dropping %d signals", iid, len(signals))
            await self._answer_failed(signals, f"invalid entity id {iid}")
            await self.store.commit(None, name, key, False, None, signals)
            self._forget(iid, signals)
            return len(signals)
        entity = self.entities.get(name)
        if entity is None and self.remote is None:
            log.error("entity %s: no entity function named %r; dropping %d signals", iid, name, len(signals))
            await self._answer_failed(signals, f"no entity function named {name!r}")
            await self.store.commit(None, name, key, False, None, signals)
            self._forget(iid, signals)
            return len(signals)
        before = await self.store.read(iid)
        response = await self._run_batch(iid, name, key, entity, before, signals)
        await self._commit_batch(iid, name, key, before, signals, response, signals)
        log.debug("entity %s applied %d operations", iid, len(signals))
        return len(signals)

    async def _run_batch(
        self,
        iid: str,
        name: str,
        key: str,
        entity: EntityFunction | None,
        before: EntityRecord | None,
        signals: list[PendingSignal],
    ) -> dict[str, Any]:
        """The entity function's response to `signals` on the state `before` (_BatchFailed if it raised)."""
        exists = before is not None and before.exists
        try:
            if self.remote is not None:
                state_text = before.state if exists and before else None
                return await self.remote.entity_batch(iid, exists, state_text, signals)
            assert entity is not None
            request = build_request(name, key, exists, before.state if exists and before else None, signals)
            call = asyncio.get_running_loop().run_in_executor(
                self.executor, entity.fn, func.EntityContext(request)
            )
            response: dict[str, Any] = json.loads(await within(self.timeout, call, entity.function_name))
            return response
        except Exception as exc:
            raise _BatchFailed(signals, f"{type(exc).__name__}: {exc}") from exc

    async def _commit_batch(
        self,
        iid: str,
        name: str,
        key: str,
        before: EntityRecord | None,
        signals: list[PendingSignal],
        response: dict[str, Any],
        applied: list[PendingSignal],
    ) -> None:
        """Answer the batch's calls, forward its signals, commit its state listing `applied` (the
        signals of the batch that are stored), then tell the waiters in this process."""
        for signal, result in zip(signals, response.get("results") or [], strict=False):
            if result.get("isError"):
                log.warning("entity %s operation %r failed: %s", iid, signal.operation, result.get("result"))
            if signal.parent and signal.request_id and self.respond is not None:
                # A call's answer, or a signal's acknowledgement (which tells the orchestration
                # not to send it again after a restart).
                answer: dict[str, Any] = {"result": result.get("result") or "null"}
                if result.get("isError"):
                    answer["exceptionType"] = "Exception"
                await self.respond(
                    signal.parent, signal.parent_execution, signal.request_id, json.dumps(answer)
                )
        new_exists = bool(response.get("entityExists"))
        state = response.get("entityState") if new_exists else None
        if state is not None and not isinstance(state, str):
            state = json.dumps(state)
        await self._forward_signals(iid, response.get("signals") or [])
        outbox = [_outbox_entry(start) for start in response.get("starts") or []]
        await self.store.commit(before, name, key, new_exists, state, applied, outbox=outbox or None)
        self._forget(iid, signals)
        if outbox:
            await self._start_orchestrations(iid, outbox)
            await self._clear_outbox(iid)
        if self.committed is not None:
            results = response.get("results") or []
            one = results[0].get("result") if len(signals) == 1 and len(results) == 1 else None
            self.committed(name, key, new_exists, state, one if isinstance(one, str) else None)

    # -- inline operations: run at once on an idle entity, accepted while they run ---------------
    def _can_run_inline(self, iid: str, name: str, key: str, running: bool = False) -> bool:
        """Whether `iid` is idle here: nothing queued, running or in doubt for it (then an operation
        run at once is in arrival order), and its function is the app's own. `running`: asked by
        the inline run itself."""
        return not (
            self._closing
            or self.remote is not None
            or name not in self.entities
            or invalid_key_reason(name, key) is not None
            or (self.gate is not None and self.gate())
            or iid in self._workers
            or (iid in self._inline and not running)
            or iid in self._unknown
            or self._accepted.get(iid)
            or iid in self._batch_sizes
            or iid in self._poison
        )

    async def accept_inline(self, name: str, key: str, operation: str, input_text: str | None) -> bool:
        """Run one operation on an idle entity at once, without the signal's round trip through the
        entity API and the worker; False (nothing done) when the entity is not idle or its input
        is long.

        The operation is accepted by storing it in the entity's state row (`EntityStore.hold`: one
        ETag-checked write, where a signal costs a row insert and, after its commit, a delete), and
        the commit that applies it clears it in the same write. Returns once it is accepted. A
        SIGKILL before that means it was never accepted (the caller's connection drops); after, it
        is applied after the restart as any stored signal is. Raises StorageUnavailable when it may
        or may not have been stored. The commit wakes the entity's watches (`committed`).
        """
        iid = instance_id(name, key)
        name = name.lower()
        if len(input_text or "") > HELD_INPUT_CHARS or not self._can_run_inline(iid, name, key):
            return False
        loop = asyncio.get_running_loop()
        accepted: asyncio.Future[bool] = loop.create_future()
        signal = PendingSignal(new_signal_key(), operation, input_text, held=True)
        self._inline[iid] = loop.create_task(
            self._run_inline(iid, name, key, signal, accepted), name=f"inline {iid}"
        )
        return await asyncio.shield(accepted)

    async def _run_inline(
        self, iid: str, name: str, key: str, signal: PendingSignal, accepted: asyncio.Future[bool]
    ) -> None:
        taken = False
        try:
            async with self.lock(iid):
                if not self._can_run_inline(iid, name, key, running=True):
                    _settle(accepted, False)  # something came first: the caller signals instead
                    return
                before = await self._hold(iid, name, key, signal)
                if before is None:
                    _settle(accepted, False)
                    return
                _settle(accepted, True)
                taken = True
                try:
                    response = await self._run_batch(iid, name, key, self.entities[name], before, [signal])
                    await self._commit_batch(iid, name, key, before, [signal], response, [signal])
                except Exception as exc:
                    # Not committed (the function crashed, or the commit failed and may have
                    # landed): the held operation goes the ordinary way, which retries, isolates
                    # an operation that crashes the function, and reads what the row still holds.
                    log.warning(
                        "entity %s: %r not committed, retried as a signal: %s", iid, signal.operation, exc
                    )
                    if isinstance(exc, _BatchFailed):
                        self._batch_sizes[iid] = 1  # as `step` does: the retry is the isolated one
                    self._unknown.add(iid)
                    self.notify(iid, signal)
                    return
        except asyncio.CancelledError:
            _settle(accepted, StorageUnavailable("the host is stopping"))
            raise
        except Exception as exc:
            if not taken:
                log.warning("entity %s: %r not accepted: %s", iid, signal.operation, exc)
                _settle(accepted, StorageUnavailable(f"storage failed: {exc}"))
        finally:
            self._inline.pop(iid, None)

    async def _hold(self, iid: str, name: str, key: str, signal: PendingSignal) -> EntityRecord | None:
        """Store `signal` in the entity's state row; the row as it is then (None: declined). An
        entity this host has not seen is taken to be new (its row is created with the operation
        in it), and read only when it turns out to exist: a new session's first turn costs no read."""
        found, before = self.store.states.get(iid)
        try:
            return await self.store.hold(before, name, key, signal)
        except ConcurrencyConflict:
            if found and before is not None:
                return None  # changed under a cached row: let the ordinary path sort it out
        before = await self.store.read(iid)
        try:
            return await self.store.hold(before, name, key, signal)
        except ConcurrencyConflict:
            return None

    async def _control(self, iid: str, before: EntityRecord | None, signal: PendingSignal) -> int:
        """Apply a critical section's lock request or unlock (`locks.py`): a lock is taken when the
        entity is free, then passed on to the next entity of the set or granted (written before the
        commit, so at-least-once: the next entity drops a copy it holds or has released already)."""
        name, key = split_instance_id(iid)
        message = locks.parse(signal.input)
        section = str(message.get("section") or "")
        exists = before is not None and before.exists
        state = before.state if before is not None and exists else None
        lock: tuple[str, str] | None | bool = True
        released = None
        if signal.control == "lock" and section and before is not None and section in before.released:
            log.debug("entity %s: lock request of released section %s dropped", iid, section)
        elif signal.control == "lock" and before is not None and before.locked_by == section:
            log.debug("entity %s: lock request of section %s again (held): dropped", iid, section)
        elif signal.control == "lock" and before is not None and before.locked_by:
            # Another section of the same orchestration holds it (its unlock is sent before a new
            # request, so this is an orchestration that lost track): the request waits for it.
            log.warning("entity %s: %s asks for a second lock while holding one", iid, signal.parent)
            return 0
        elif signal.control == "lock":
            lock = (section, signal.parent or "")
            await self._pass_lock(signal, message)
        else:
            if before is not None and before.locked_by == section:
                lock = None
            released = section
            if signal.parent and signal.request_id and self.respond is not None:  # acknowledged
                await self.respond(signal.parent, signal.parent_execution, signal.request_id, locks.GRANTED)
        await self.store.commit(before, name, key, exists, state, [signal], lock=lock, released=released)
        self._forget(iid, [signal])
        return 1

    async def _pass_lock(self, signal: PendingSignal, message: dict[str, Any]) -> None:
        """The lock request goes on to the next entity of its set (under the same row key, so a copy
        sent again is not written twice), or the orchestration is told the whole set is locked."""
        lock_set = [str(e) for e in message.get("lockSet") or []]
        position = int(message.get("position") or 0) + 1
        target = locks.entity_of(lock_set[position]) if position < len(lock_set) else None
        if target is None:
            if position < len(lock_set):
                log.warning("lock set %s names %r, not an entity id; granted", lock_set, lock_set[position])
            if signal.parent and signal.request_id and self.respond is not None:
                await self.respond(signal.parent, signal.parent_execution, signal.request_id, locks.GRANTED)
            return
        section = str(message.get("section") or "")
        try:
            passed = await self.store.add_signal(
                *target,
                locks.LOCK_OPERATION,
                locks.lock_request(section, lock_set, position),
                row_key=signal.row_key,
                request_id=signal.request_id,
                parent=signal.parent,
                call=True,
                parent_execution=signal.parent_execution,
                control="lock",
            )
        except ResourceExistsError:
            passed = None  # passed on before a restart: the next entity reads it from storage
        self.notify(instance_id(*target), passed)

    async def _answer_failed(self, signals: list[PendingSignal], reason: str) -> None:
        """Calls that will never run get an error answer (their orchestrations would wait forever)."""
        for signal in signals:
            if signal.parent and signal.request_id and self.respond is not None:
                answer = {"result": json.dumps(reason), "exceptionType": "Exception"}
                await self.respond(
                    signal.parent, signal.parent_execution, signal.request_id, json.dumps(answer)
                )

    async def _start_orchestrations(self, source: str, outbox: list[dict[str, Any]]) -> None:
        """Start the orchestrations a committed batch asked for (its outbox). Each has the execution id
        it gets, so starting one again (after a crash, from the outbox at start-up) finds it started."""
        for entry in outbox:
            if self.start is None:
                log.warning("entity %s asked to start %r: nothing here starts orchestrations", source, entry)
                continue
            scheduled = datetime.fromisoformat(entry["scheduled"]) if entry.get("scheduled") else None
            backoff = Backoff()
            while not self._closing:  # committed: it must start, so a storage failure is retried
                try:
                    await self.start(
                        str(entry["name"]),
                        str(entry["instanceId"]),
                        entry.get("input"),
                        scheduled,
                        entry["execution"],
                    )
                    break
                except RETRIABLE as exc:
                    await backoff.after(exc, f"entity {source}: starting {entry['instanceId']}")

    async def _redo_outboxes(self) -> None:
        """At start-up: start what the last batch of each entity asked for, if it has not started."""
        for iid in await self.store.with_outbox():
            async with self.lock(iid):
                record = await self.store.read(iid)
                if record is not None and record.outbox:
                    await self._start_orchestrations(iid, list(record.outbox))
                    await self._clear_outbox(iid)

    async def _clear_outbox(self, iid: str) -> None:
        """The outbox's orchestrations started: empty it (one more write of the state row), so that a
        later start-up does not start one again that was purged since."""
        record = await self.store.read(iid)
        if record is None or not record.outbox:
            return
        name, key = split_instance_id(iid)
        await self.store.commit(record, name, key, record.exists, record.state if record.exists else None, [])

    async def _forward_signals(self, source: str, signals: list[Any]) -> None:
        """Enqueue signals an entity sent to other entities (at-least-once: written before the commit)."""
        for signal in signals:
            try:
                target = signal.get("target") or {}
                name = str(target.get("name", "")).lower()
                key = str(target.get("key", ""))
                op = str(signal["name"])
                payload = signal.get("input")
            except (AttributeError, KeyError, TypeError):
                log.warning("entity %s emitted a signal the host does not understand: %r", source, signal)
                continue
            if (self.remote is None and name not in self.entities) or invalid_key_reason(name, key):
                log.warning("entity %s signalled unknown entity @%s@%s", source, name, key)
                continue
            text = payload if isinstance(payload, str) or payload is None else json.dumps(payload)
            forwarded = await self.store.add_signal(name, key, op, text)
            self.notify(instance_id(name, key), forwarded)


def _outbox_entry(start: dict[str, Any]) -> dict[str, Any]:
    """An orchestration start as the state row keeps it (JSON), with the execution id it will get."""
    scheduled = start.get("scheduled")
    return {
        "name": str(start["name"]),
        "instanceId": str(start["instanceId"]),
        "input": start.get("input"),
        "scheduled": scheduled.isoformat() if isinstance(scheduled, datetime) else scheduled,
        "execution": uuid.uuid4().hex,
    }


def _settle(future: asyncio.Future[bool], outcome: bool | BaseException) -> None:
    """Resolve `future` once: the first outcome wins."""
    if future.done():
        return
    if isinstance(outcome, BaseException):
        future.set_exception(outcome)
    else:
        future.set_result(outcome)


class _BatchFailed(Exception):
    """The entity handler raised for a whole batch."""

    def __init__(self, signals: list[PendingSignal], message: str) -> None:
        super().__init__(message)
        self.signals = signals
        self.row = signals[0].row_key if signals else "?"
