"""Dispatch: starting what a committed episode scheduled, and turning outcomes into inbox events.

Activities run on a bounded pool (sync ones on threads of their own, so a fan-out of slow ones
cannot hold the threads of episodes, entity operations and HTTP functions), timers go on the
scheduler, children are created (a child that exists with this parent is only woken), and entity
calls and signals are written as signal rows to the entity's partition (answered by the entity
dispatcher into the instance's inbox). Each step is idempotent, so a storage failure is retried and
a restart may start one again (`again`). Results come back as inbox events: activity results and
fired timers in memory (`deliver`), everything else as inbox rows (`send`).

functionTimeout bounds activities: one that runs longer fails its task with a FunctionTimeoutError
the orchestrator can catch, and frees its slot; a terminated instance's running activities are given
up the same way (their sync code runs on in its thread, see `workers.DaemonThreadPool`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import traceback
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from azure.core.exceptions import ResourceExistsError
from azure.functions import meta
from azure.functions.durable_functions import ActivityTriggerConverter

from ..entities import locks
from ..entities.dispatcher import EntityDispatcher, split_instance_id
from ..entities.store import DUE_PREFIX, SIGNAL_PREFIX, PendingSignal, invalid_key_reason, new_signal_key
from ..loader import ActivityFunction, OrchestratorFunction
from ..scheduler import Scheduler
from ..storage.tables import RETRIABLE, Backoff, ConcurrencyConflict
from ..triggers.outputs import OutputWriter
from ..workers import DaemonThreadPool, KeyedWorkers, within
from . import history as h
from .executor import ActivityFailed, RemoteExecutor
from .replay import Work
from .store import InstanceRecord, InstanceStore, invalid_instance_id

log = logging.getLogger(__name__)


class EngineSettings:
    """The `extensions.durableTask` settings the engine honours."""

    def __init__(
        self, max_activities: int = 10, max_orchestrators: int = 10, function_timeout: float | None = None
    ) -> None:
        """`function_timeout`: host.json's functionTimeout in seconds (None: unbounded)."""
        self.max_activities = max(1, max_activities)
        self.max_orchestrators = max(1, max_orchestrators)
        self.function_timeout = function_timeout


class WorkDispatch(KeyedWorkers):
    """The engine's half that starts work; `OrchestrationEngine` sets the state below."""

    store: InstanceStore
    entities: EntityDispatcher
    activities: dict[str, ActivityFunction]
    outputs: OutputWriter
    settings: EngineSettings
    scheduler: Scheduler
    remote: RemoteExecutor | None
    now: Callable[[], datetime]
    _running: dict[tuple[str, str, int], asyncio.Task[Any]]  # activities in flight
    _tasks: set[asyncio.Task[Any]]
    _activity_slots: asyncio.Semaphore
    _activity_threads: DaemonThreadPool

    if TYPE_CHECKING:  # the engine's, used here

        def orchestrator(self, name: str) -> OrchestratorFunction | None: ...
        async def send(self, iid: str, event: dict[str, Any], execution: str = "") -> None: ...
        def deliver(self, iid: str, event: dict[str, Any], execution: str) -> None: ...
        def notify(self, iid: str, unknown: bool = False) -> None: ...
        def _forget_instance(self, iid: str) -> None: ...

    async def _dispatch(
        self, before: InstanceRecord, new: InstanceRecord, work: list[Work], sent: list[dict[str, Any]]
    ) -> None:
        keys = {int(item["EventId"]): item["SignalKey"] for item in sent}
        execution = before.execution_id
        for item in work:
            backoff = Backoff()
            while not self._closing:  # each step is idempotent, so a storage failure is retried
                try:
                    await self._start_work(before.instance_id, execution, item, keys.get(item.task_id))
                    break
                except RETRIABLE as exc:
                    await backoff.after(
                        exc, f"instance {before.instance_id}: starting {item.kind} {item.name}"
                    )

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _give_up_activities(self, iid: str) -> None:
        """The instance ended (terminated, purged): its running activities stop holding their slots
        and threads; nothing waits for their results."""
        for key, task in list(self._running.items()):
            if key[0] == iid:
                task.cancel()

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("background task %s failed", task.get_name(), exc_info=task.exception())

    async def _start_work(
        self, iid: str, execution: str, work: Work, signal_key: str | None, again: bool = False
    ) -> None:
        """Start one piece of scheduled work (`again`: after a restart, it may have been started)."""
        if work.kind == "activity":
            key = (iid, execution, work.task_id)
            if key not in self._running:
                self._running[key] = self._spawn(
                    self._run_activity(iid, execution, work), f"activity {work.name} {iid}"
                )
        elif work.kind == "timer":
            assert work.fire_at is not None
            self.scheduler.at(work.fire_at, (iid, execution, work.task_id), self._fire, iid, execution, work)
        elif work.kind == "sub":
            await self._start_child(iid, execution, work)
        elif work.kind in ("call", "signal"):
            await self._send_to_entity(iid, execution, work, signal_key or new_signal_key(), again)
        elif work.kind in ("event", "terminate"):
            pass  # sent before the episode committed (`OrchestrationEngine._send_out`)
        else:
            reason = f"{work.name} is not supported by the local host"
            await self._answer(iid, execution, h.TASK_FAILED, work.task_id, Reason=reason, Details="")

    async def _answer(self, iid: str, execution: str, kind: int, task_id: int, **fields: Any) -> None:
        """A completion for `task_id`: activity results and timer fires in memory (see `deliver`),
        a child's failure to start in the inbox."""
        event = h.event(kind, self.now(), **{h.COMPLETION_KEYS[kind]: task_id}, **fields)
        if kind in (h.TASK_COMPLETED, h.TASK_FAILED, h.TIMER_FIRED):
            self.deliver(iid, event, execution)
        else:
            await self.send(iid, event, execution)

    async def _fire(self, iid: str, execution: str, work: Work) -> None:
        assert work.fire_at is not None
        await self._answer(iid, execution, h.TIMER_FIRED, work.task_id, FireAt=h.iso(work.fire_at))

    async def _run_activity(self, iid: str, execution: str, work: Work) -> None:
        try:
            if self.remote is not None:
                await self._run_remote_activity(iid, execution, work)
                return
            activity = self.activities.get(work.name.lower())
            if activity is None:
                reason = f"activity function '{work.name}' is not defined by this app"
                await self._answer(iid, execution, h.TASK_FAILED, work.task_id, Reason=reason, Details="")
                return
            async with self._activity_slots:
                try:
                    result = await within(
                        self.settings.function_timeout,
                        self._call_activity(activity, work.input),
                        activity.function_name,
                    )
                except Exception as exc:
                    reason = f"Activity function '{activity.name}' failed: {type(exc).__name__}: {exc}"
                    details = "".join(traceback.format_exception(exc))
                    await self._answer(
                        iid, execution, h.TASK_FAILED, work.task_id, Reason=reason, Details=details
                    )
                    return
            await self._answer(iid, execution, h.TASK_COMPLETED, work.task_id, Result=result)
        finally:
            if self._running.get((iid, execution, work.task_id)) is asyncio.current_task():
                del self._running[(iid, execution, work.task_id)]

    async def _run_remote_activity(self, iid: str, execution: str, work: Work) -> None:
        """An activity the remote executor runs (no app function, no functionTimeout: the worker's)."""
        assert self.remote is not None
        async with self._activity_slots:
            try:
                result = await self.remote.activity(iid, execution, work)
            except ActivityFailed as exc:
                await self._answer(
                    iid,
                    execution,
                    h.TASK_FAILED,
                    work.task_id,
                    Reason=exc.reason,
                    Details=exc.details,
                    **exc.fields,
                )
                return
        await self._answer(iid, execution, h.TASK_COMPLETED, work.task_id, Result=result)

    async def _call_activity(self, activity: ActivityFunction, input_text: str | None) -> str:
        """Decode the input and encode the result as the Functions worker does."""
        value = ActivityTriggerConverter.decode(
            meta.Datum(type="json", value=input_text if input_text is not None else "null"),
            trigger_metadata=None,
        )
        returned = await self.outputs.call(
            activity.fn, {activity.param: value}, activity.is_async, self._activity_threads, activity.outputs
        )
        return str(ActivityTriggerConverter.encode(returned, expected_type=None).value)

    async def _start_child(self, iid: str, execution: str, work: Work) -> None:
        function = self.orchestrator(work.name)
        if function is None:
            reason = f"orchestrator function '{work.name}' is not defined by this app"
            await self._answer(iid, execution, h.SUB_FAILED, work.task_id, Reason=reason, Details="")
            return
        child = work.target
        problem = invalid_instance_id(child)
        if problem is not None:
            await self._answer(iid, execution, h.SUB_FAILED, work.task_id, Reason=problem, Details="")
            return
        async with self.lock(child):
            existing = await self.store.read(child)
            if existing is not None and (
                existing.parent,
                existing.parent_execution,
                existing.parent_task,
            ) == (iid, execution, work.task_id):
                # Already started: a resumption, or a retry after a write whose answer was lost (the
                # child was then never woken), so wake it (an episode with nothing to do is cheap).
                self.notify(child)
                return
            if existing is not None and not existing.terminal:
                reason = f"an instance with id {child!r} is already {existing.status}"
                await self._answer(iid, execution, h.SUB_FAILED, work.task_id, Reason=reason, Details="")
                return
            if existing is not None:
                await self.store.purge(child)
                self._forget_instance(child)
            record = InstanceRecord(
                instance_id=child,
                name=function.name,
                status="Pending",
                execution_id=uuid.uuid4().hex,
                input=work.input,
                created=self.now(),
                parent=iid,
                parent_task=work.task_id,
                parent_execution=execution,
            )
            try:
                await self.store.write(record, None, create=True)
            except ConcurrencyConflict:
                pass  # written meanwhile (by a start whose answer was lost): wake it all the same
        self.notify(child)

    async def _send_to_entity(self, iid: str, execution: str, work: Work, row_key: str, again: bool) -> None:
        name, key = split_instance_id(work.target) if work.target.count("@") >= 2 else ("", "")
        problem = invalid_key_reason(name, key) if name else "not an entity id"
        if problem is None and self.entities.remote is None and name not in self.entities.entities:
            problem = f"no entity function named {name!r}"
        if problem is not None:
            # A call fails with the problem; a signal is acknowledged all the same (nothing will
            # ever apply it), so an instance waiting for its acknowledgements can end.
            if work.kind == "signal":
                log.warning("instance %s signalled %s: %s", iid, work.target, problem)
            payload = json.dumps(
                {"result": json.dumps(f"entity {work.target}: {problem}"), "exceptionType": "Exception"}
            )
            await self.send(
                iid, h.event(h.EVENT_RAISED, self.now(), Name=work.request_id, Input=payload), execution
            )
            return
        input_text = None if work.input in (None, "null") else json.dumps(work.input)
        if work.kind == "signal" and work.fire_at is not None and work.fire_at > self.now():
            # A scheduled signal: stored (under the row key the history recorded) until it is due,
            # and acknowledged now, so the instance need not wait for it to end.
            due_key = DUE_PREFIX + row_key.removeprefix(SIGNAL_PREFIX)
            # Queued later with no parent, it is read as a client's signal: stored as a client's is.
            stored = work.input if self.entities.remote is not None else input_text
            await self.entities.schedule(name, key, work.name, stored, work.fire_at, due_key)
            await self.entity_answered(iid, execution, work.request_id, json.dumps({"result": "null"}))
            return
        if again:
            # Sending again after a restart: under the entity's lock, so that its worker is not
            # half-way through applying the first copy (which its state row would then list).
            async with self.entities.lock(work.target):
                entity = await self.entities.store.read(work.target)
                if entity is not None and row_key in entity.applied:
                    return
                signal = await self._add_signal(iid, execution, work, name, key, input_text, row_key)
        else:
            signal = await self._add_signal(iid, execution, work, name, key, input_text, row_key)
        # None: the row was already written (by a send whose answer was lost, which then woke
        # nobody): the entity reads its signals from storage.
        self.entities.notify(work.target, signal)

    async def _add_signal(
        self, iid: str, execution: str, work: Work, name: str, key: str, input_text: str | None, row_key: str
    ) -> PendingSignal | None:
        """Write the entity operation's signal row; None when that row is already there."""
        try:
            return await self.entities.store.add_signal(
                name,
                key,
                work.name,
                input_text,
                row_key=row_key,
                request_id=work.request_id,
                parent=iid,
                call=work.kind == "call",
                parent_execution=execution,
                control=locks.control_of(work.name),
            )
        except ResourceExistsError:
            return None

    async def release_locks(self, record: InstanceRecord) -> None:
        """An instance that ends without unlocking (terminated) releases the entity locks its critical
        sections requested: an unlock to every entity of each set (one that the request has not
        reached yet then drops it when it comes). Written before the instance's commit, so a crash
        in between sends them again; an unlock sent twice is harmless."""
        for section, targets in locks.unreleased(record.history).items():
            for target in targets:
                entity = locks.entity_of(target)
                if entity is None:
                    continue
                signal = await self.entities.store.add_signal(
                    *entity,
                    locks.UNLOCK_OPERATION,
                    locks.unlock_request(section),
                    parent=record.instance_id,
                    control="unlock",
                )
                self.entities.notify(target, signal)

    async def entity_answered(self, parent: str, execution: str, request: str, payload: str) -> None:
        """The entity dispatcher's answer to a call or acknowledgement of a signal (written before the
        entity commits)."""
        await self.send(parent, h.event(h.EVENT_RAISED, self.now(), Name=request, Input=payload), execution)
