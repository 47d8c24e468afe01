"""Orchestration episodes: one worker per instance runs episodes over its inbox, in order.

An episode reads the instance row and its inbox, takes its batch (`inbox.py`), runs the SDK's
orchestrator handler (`replay.py`), commits the outcome in one write (`InstanceStore.commit`), and
only then starts what it scheduled (`dispatch.py`): activities, timers, child instances and entity
operations. Results come back as inbox messages, which wake the worker again. At start-up every
instance that still runs gets its scheduled work back from its history (`recovery.py`), so a SIGKILL
at any point loses nothing (activities may run twice, as on Azure).

functionTimeout bounds episodes as it bounds activities: orchestrator code must not block, and one
that hangs fails its instance.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from concurrent.futures import Executor
from dataclasses import replace
from datetime import datetime
from typing import Any

from ..clock import Clock
from ..entities.dispatcher import EntityDispatcher
from ..entities.store import new_signal_key
from ..loader import ActivityFunction, OrchestratorFunction
from ..scheduler import Scheduler
from ..storage.tables import ConcurrencyConflict, next_sequence
from ..triggers.outputs import OutputWriter
from ..workers import DaemonThreadPool, FunctionTimeoutError, within
from . import history as h
from .dispatch import EngineSettings, WorkDispatch
from .executor import RemoteExecutor
from .inbox import CONTROL, acknowledged, take_batch
from .recovery import unfinished_work
from .replay import Decision, Instance, Work, run_episode, with_cancellations
from .store import MESSAGE_PREFIX, TERMINAL, InstanceRecord, InstanceStore, Message, invalid_instance_id

log = logging.getLogger(__name__)

MAX_ACTIVITY_THREADS = 64
PURGE_CONCURRENCY = 32  # instances one purge by filter deletes at once
VOLATILE = "-mem"  # suffix of the keys of messages kept in memory only (see `deliver`)


class InstanceExists(Exception):
    """Starting an instance id that is still running."""


class OrchestrationEngine(WorkDispatch):
    """Owns the per-instance workers, the activity pool and the timers."""

    label = "instance"

    def __init__(
        self,
        store: InstanceStore,
        entities: EntityDispatcher,
        orchestrators: dict[str, OrchestratorFunction],
        activities: dict[str, ActivityFunction],
        executor: Executor,
        outputs: OutputWriter,
        settings: EngineSettings | None = None,
        clock: Clock | None = None,
        remote: RemoteExecutor | None = None,
    ) -> None:
        """`outputs` calls activities with their output bindings (queue outputs) bound; `clock` gives
        history times, `current_utc_datetime` and the timers' times (default: the wall clock);
        `remote` runs episodes and activities instead of the app's functions (`executor.py`)."""
        super().__init__()
        self.remote = remote
        self.outputs = outputs
        self.store = store
        self.entities = entities
        self.orchestrators = orchestrators
        self.activities = activities
        self.executor = executor
        self.settings = settings or EngineSettings()
        self.clock = clock or Clock()
        self.now = self.clock.now
        self.scheduler = Scheduler(self.clock)
        # Messages this process wrote and has not applied yet (they are also in storage); instances in
        # `_unknown` may have messages only storage knows of (an earlier run's, or after a failure).
        self._accepted: dict[str, dict[str, Message]] = {}
        # Instances whose stored inbox was read only up to this row key (one page per episode): their
        # episodes take nothing later until the reads, one page per episode, reach its end.
        self._read_to: dict[str, str] = {}
        self._running: dict[tuple[str, str, int], asyncio.Task[Any]] = {}  # activities in flight
        self._tasks: set[asyncio.Task[Any]] = set()
        self._activity_slots = asyncio.Semaphore(self.settings.max_activities)
        # Sync activities get threads of their own: a fan-out of slow ones must not hold the threads
        # that run orchestrator episodes, entity operations and sync HTTP functions.
        self._activity_threads = DaemonThreadPool(
            min(self.settings.max_activities, MAX_ACTIVITY_THREADS), thread_name_prefix="activity"
        )
        self._orchestrator_slots = asyncio.Semaphore(self.settings.max_orchestrators)
        self._resumed = False  # until resume() has run, every inbox read also asks storage
        # Instances whose last commit got no answer (it may have landed without the work it scheduled
        # being started): their next episode starts that work from the history first, as start-up does.
        self._uncertain: set[str] = set()
        entities.respond = self.entity_answered
        entities.scheduler = self.scheduler
        entities.start = self.start_for_entity

    # -- the API's operations --------------------------------------------------------------------
    def orchestrator(self, name: str) -> OrchestratorFunction | None:
        """The orchestrator registered under `name` (case-insensitive)."""
        if self.remote is not None:
            known = self.remote.orchestrator_name(name)
            return None if known is None else OrchestratorFunction(known, known, _remote_only)
        return self.orchestrators.get(name.lower())

    async def start(
        self,
        name: str,
        iid: str,
        input_text: str | None,
        scheduled: datetime | None = None,
        execution: str | None = None,
    ) -> InstanceRecord:
        """Create (or restart a finished) instance; its first episode runs right after (or, with
        `scheduled`, once the host's clock reaches that time). `execution`: its execution id (new
        when None)."""
        function = self.orchestrator(name)
        assert function is not None
        async with self.lock(iid):
            record = InstanceRecord(
                instance_id=iid,
                name=function.name,
                status="Pending",
                execution_id=execution or uuid.uuid4().hex,
                input=input_text,
                created=self.now(),
                scheduled_start=scheduled,
            )
            found, cached = self.store.records.get(iid)
            created = False
            if not (found and cached is not None):  # a new id costs one round trip: create first
                try:
                    await self.store.write(record, None, create=True)
                    created = True
                except ConcurrencyConflict:
                    pass
            if not created:
                before = await self.store.read(iid)
                if before is not None and not before.terminal:
                    raise InstanceExists(f"an instance with id {iid!r} is already {before.status}")
                if before is not None:
                    await self.store.purge(iid)
                    self._forget_instance(iid)
                record.created = self.now()
                await self.store.write(record, None, create=True)
        self.notify(iid)
        return record

    async def start_for_entity(
        self, name: str, iid: str, input_text: str | None, scheduled: datetime | None, execution: str
    ) -> None:
        """An entity starts an orchestration, after its batch committed (the start is in the entity's
        outbox): under the execution id the outbox gave it, so a start done already (the outbox is
        started again at start-up) is recognised. An instance of that id that runs is left as it is."""
        existing = await self.store.read(iid) if not invalid_instance_id(iid) else None
        if existing is not None and existing.execution_id == execution:
            return
        problem = invalid_instance_id(iid) or (
            None if self.orchestrator(name) else f"no orchestrator {name!r}"
        )
        if problem is not None:
            log.warning("an entity asked to start %s %r: %s; not started", name, iid, problem)
            return
        try:
            await self.start(name, iid, input_text, scheduled, execution)
        except InstanceExists:
            log.info("an entity asked to start %s again while it runs: left as it is", iid)

    async def send(self, iid: str, event: dict[str, Any], execution: str = "") -> None:
        """Persist a message for `iid`, then wake its worker."""
        message = await self.store.add_message(iid, event, execution)
        if not self._closing:
            self._accepted.setdefault(iid, {})[message.row_key] = message
            self.notify(iid)

    def deliver(self, iid: str, event: dict[str, Any], execution: str) -> None:
        """Hand an activity result or a fired timer to the worker without writing it to storage.

        Nothing is lost if the host dies before the episode that takes it commits: the history still
        shows the work as scheduled and not completed, so start-up runs the activity again or re-arms
        the timer (activities are at-least-once either way). This spares a write per activity.
        """
        if self._closing:
            return
        key = f"{MESSAGE_PREFIX}{next_sequence():020d}{VOLATILE}"
        self._accepted.setdefault(iid, {})[key] = Message(key, event, execution)
        self.notify(iid)

    async def raise_event(self, iid: str, name: str, input_text: str | None) -> None:
        """An external event (kept across continue-as-new until a wait takes it)."""
        await self.send(iid, h.event(h.EVENT_RAISED, self.now(), Name=name, Input=input_text))

    async def control(self, iid: str, kind: int, reason: str | None) -> None:
        """Terminate, suspend or resume (applied in order with the instance's other messages)."""
        await self.send(iid, h.event(kind, self.now(), Reason=reason, Input=json.dumps(reason)))

    async def purge(self, iid: str) -> bool:
        """Delete the instance and its inbox; a running one is stopped first."""
        async with self.lock(iid):
            found = await self.store.purge(iid)
            self._forget_instance(iid)
        return found

    async def purge_many(self, page: list[tuple[str, str]]) -> int:
        """Purge the instances of `page` (ids in order, with their statuses), `PURGE_CONCURRENCY` at a
        time; how many were deleted. The rows of the finished ones are listed in one scan, and each
        instance's deleted, its instance row first and only if unchanged since (an instance restarted
        meanwhile stays); the others are stopped first, as `purge` does."""
        listed = await self.store.rows_of([iid for iid, _ in page]) if page else {}
        slots = asyncio.Semaphore(PURGE_CONCURRENCY)

        async def one(iid: str, status: str) -> bool:
            async with slots:
                rows = listed.get(iid)
                if status not in TERMINAL or rows is None:
                    return await self.purge(iid)
                async with self.lock(iid):
                    found = await self.store.purge_rows(iid, rows)
                    if found:
                        self._forget_instance(iid)
                return found

        return sum(await asyncio.gather(*(one(iid, status) for iid, status in page)))

    async def _start_due(self, iid: str) -> None:
        """A scheduled start's time came: run the instance's first episode."""
        self.notify(iid)

    def _forget_instance(self, iid: str) -> None:
        self._give_up_activities(iid)
        self._accepted.pop(iid, None)
        self._read_to.pop(iid, None)
        self._unknown.discard(iid)
        self.scheduler.cancel_prefix((iid,))

    # -- workers ---------------------------------------------------------------------------------
    def notify(self, iid: str, unknown: bool = False) -> None:
        """Messages for `iid` may be waiting (`unknown`: some only in storage): run its worker."""
        if unknown and not self._closing:
            self._unknown.add(iid)
        self.wake(iid)

    async def resume(self) -> int:
        """At start-up: give every unfinished instance its scheduled work back and run its worker."""
        ids = await self.store.active()
        for iid in ids:
            # Under the instance's lock, and counting what this process already holds in memory:
            # an instance started since this host came up may be mid-episode, and an activity that
            # already finished here must not run again.
            async with self.lock(iid):
                record = await self.store.read(iid)
                if record is not None and not record.terminal:
                    inbox = await self.store.messages(iid, record.applied)
                    inbox += list(self._accepted.get(iid, {}).values())
                    await self._recover(record, inbox)
            self.notify(iid, unknown=True)
        self._resumed = True
        return len(ids)

    async def close(self) -> None:
        """Stop workers, activities and timers; everything unfinished is resumed at the next start."""
        self.scheduler.close()
        await self._stop_workers(*self._tasks)
        self._activity_threads.shutdown(wait=False, cancel_futures=True)

    def _worker_ended(self, iid: str) -> None:
        if not self._accepted.get(iid):
            self._accepted.pop(iid, None)

    def busy(self) -> bool:
        """A worker, an activity or child start or entity send, or a fired timer's callback runs."""
        return super().busy() or bool(self._tasks) or self.scheduler.running()

    def held_keys(self) -> dict[str, int]:
        """The base's counts, and the instances with messages in memory or an inbox half read."""
        return {**super().held_keys(), "accepted": len(self._accepted), "read_to": len(self._read_to)}

    async def step(self, iid: str) -> bool:
        """One episode of `iid` (and another while its stored inbox has pages not read yet)."""
        changed = await self._episode(iid)
        if iid in self._read_to:
            self.wake(iid)
        return changed

    async def _inbox(self, iid: str, record: InstanceRecord | None) -> list[Message]:
        """The inbox in arrival order: from memory, merged with storage when storage may know more
        (after a restart or a failure, and until start-up resumption has finished, so that a
        message accepted early never overtakes an older stored one). Storage is read one page
        (`INBOX_PAGE` rows) per episode, on from where the last read stopped; until the reads reach
        the end, nothing later than the last row read is taken."""
        applied = record.applied if record is not None else frozenset()
        accepted = self._accepted.setdefault(iid, {})
        if iid in self._unknown or not self._resumed:
            stored, last = await self.store.inbox_page(iid, applied, self._read_to.get(iid))
            for message in stored:  # kept in memory: later episodes need the ones this one leaves
                accepted.setdefault(message.row_key, message)
            if last is not None:
                self._read_to[iid] = last
            else:
                self._read_to.pop(iid, None)
                if self._resumed:
                    self._unknown.discard(iid)
        for key in [k for k in accepted if k in applied]:
            del accepted[key]
        upto = self._read_to.get(iid)
        return [accepted[k] for k in sorted(accepted) if upto is None or k <= upto]

    def _stored(self, keys: list[str]) -> list[str]:
        """The keys of messages that have a row (volatile ones have none)."""
        return [k for k in keys if not k.endswith(VOLATILE)]

    def _consumed(self, iid: str, keys: list[str]) -> None:
        accepted = self._accepted.get(iid, {})
        for key in keys:
            accepted.pop(key, None)
        if not accepted:
            self._accepted.pop(iid, None)

    async def _episode(self, iid: str) -> bool:
        """Apply what the inbox holds; True when anything changed."""
        record = await self.store.read(iid)
        inbox = await self._inbox(iid, record)
        if iid in self._uncertain:
            if record is not None and not record.terminal:
                await self._recover(record, inbox)
            self._uncertain.discard(iid)
        if record is None or record.terminal:
            if inbox:  # events for a finished or purged instance are discarded, as on Azure
                self.store.clean_up(iid, self._stored([m.row_key for m in inbox]))
                self._consumed(iid, [m.row_key for m in inbox])
            return False
        consumed: list[str] = []
        control: list[dict[str, Any]] = []
        rest: list[Message] = []
        for message in inbox:
            if message.event.get("EventType") in CONTROL:
                control.append(message.event)
                consumed.append(message.row_key)
            else:
                rest.append(message)
        terminate = next((e for e in control if e["EventType"] == h.EXECUTION_TERMINATED), None)
        if terminate is not None:
            consumed = [m.row_key for m in inbox]
            await self.release_locks(record)
            await self._finish(record, consumed, "Terminated", terminate.get("Reason"), [terminate])
            self._give_up_activities(iid)
            return True
        status = record.status
        marks: list[dict[str, Any]] = []
        for item in control:
            status = "Suspended" if item["EventType"] == h.EXECUTION_SUSPENDED else _resumed(record)
            marks.append(item)
        if status == "Suspended":
            if marks:
                await self._commit_only(record, consumed, status, marks)
                return True
            return False
        if not record.history and record.scheduled_start is not None and record.scheduled_start > self.now():
            # A scheduled start: nothing runs (events wait in the inbox) until its time; a restart
            # arms the timer again (every unfinished instance has an episode at start-up).
            if marks:
                await self._commit_only(record, consumed, status, marks)
            self.scheduler.at(record.scheduled_start, (iid, "start"), self._start_due, iid)
            return bool(marks)
        if record.finishing is not None:
            return await self._finish_after_signals(record, rest, consumed, marks)
        buffered = self.remote is not None and self.remote.buffers_events
        batch, acks, dropped, held = take_batch(record, rest, self.now(), hold_events=not buffered)
        consumed.extend(dropped)
        consumed.extend(m.row_key for m, _ in [*batch, *acks])
        marks.extend(e for _, e in acks)
        starting = not record.history
        if not batch and not starting and not control and not dropped:
            return False  # only acknowledgements (or nothing): they ride along with the next episode
        if not batch and not starting:
            if consumed:
                await self._commit_only(record, consumed, "Running", marks)
                return True
            return False
        events = [e for _, e in batch]
        if starting:
            events.insert(
                0, h.event(h.EXECUTION_STARTED, self.now(), Name=record.name, Input=record.input, Version="")
            )
        decision = await self._decide(record, events, [e for _, e in held])
        consumed.extend(m.row_key for m, _ in held[: decision.held_taken])
        await self._apply(record, decision, consumed, marks)
        return True

    async def _decide(
        self, record: InstanceRecord, events: list[dict[str, Any]], held: list[dict[str, Any]]
    ) -> Decision:
        function = self.orchestrator(record.name)
        now = self.now()
        if self.remote is not None and function is not None:
            async with self._orchestrator_slots:
                return await self.remote.decide(record, events, now)
        if function is None:
            decision = Decision(status="Failed", events=[h.event(h.ORCHESTRATOR_STARTED, now), *events])
            decision.output = f"orchestrator function '{record.name}' is not defined by this app"
            return decision
        instance = Instance(
            record.instance_id,
            record.name,
            record.execution_id,
            record.input,
            record.parent,
            record.history,
            record.actions_seen,
        )
        loop = asyncio.get_running_loop()
        async with self._orchestrator_slots:
            episode = loop.run_in_executor(
                self.executor, run_episode, function.fn, instance, events, now, held
            )
            try:
                return await within(self.settings.function_timeout, episode, function.function_name)
            except FunctionTimeoutError as exc:
                # Orchestrator code must not block; one that hangs fails its instance.
                decision = Decision(status="Failed", events=[h.event(h.ORCHESTRATOR_STARTED, now), *events])
                decision.output = str(exc)
                return decision

    async def _apply(
        self, record: InstanceRecord, decision: Decision, consumed: list[str], marks: list[dict[str, Any]]
    ) -> None:
        """Commit an episode's outcome, then start what it scheduled."""
        await self._send_out(record, decision.work)
        for item in decision.events:
            if item["EventType"] == h.EVENT_SENT:
                item["SignalKey"] = new_signal_key()
        new = _copy(record)
        new.history = [
            *with_cancellations(record.history, decision.canceled_timers),
            *marks,
            *decision.events,
        ]
        new.actions_seen = decision.actions_seen
        new.waits = decision.waits
        new.status = "Running"
        if decision.custom_status[0]:
            new.custom_status = json.dumps(decision.custom_status[1])
        output = decision.output
        if decision.status == "Failed":
            output = f"Orchestrator function '{record.name}' failed: {decision.output}"
        if decision.status != "Running" and any(w.kind == "signal" for w in decision.work):
            # The last episode signalled entities: it ends once they acknowledged, so that a crash
            # before the signals are written leaves a Running instance that sends them again.
            new.finishing = {"status": decision.status, "output": output, "input": decision.continue_input}
            await self._commit(new, record, consumed)
            self._after_commit(record, new, replace(decision, status="Running"))
            return
        if decision.status in ("Completed", "Failed"):
            await self._finish(new, consumed, decision.status, output, [], before=record)
            return
        if decision.status == "ContinuedAsNew":
            _continue(new, decision.continue_input)
            for event in decision.carryover:  # for the new execution only: void if the commit fails
                await self.send(new.instance_id, event, new.execution_id)
        await self._commit(new, record, consumed)
        self._after_commit(record, new, decision)

    async def _send_out(self, record: InstanceRecord, work: list[Work]) -> None:
        """Events and terminates an episode sends other instances (a remote executor's `sendEvent` and
        `terminateOrchestration`): written before the episode commits, so none is lost; a copy
        written again (the episode ran again after a crash or a conflict) is recognised by the
        receiver from its `SourceKey` and dropped (a terminate twice is harmless)."""
        for item in work:
            problem = invalid_instance_id(item.target) if item.kind in ("event", "terminate") else "-"
            if problem == "-":
                continue
            if problem is not None:
                log.warning(
                    "instance %s: %s for %r dropped: %s", record.instance_id, item.kind, item.target, problem
                )
            elif item.kind == "event":
                source = f"{record.instance_id}:{record.execution_id}:{item.task_id}"
                event = h.event(
                    h.EVENT_RAISED, self.now(), Name=item.name, Input=item.input, SourceKey=source
                )
                await self.send(item.target, event)
            else:
                await self.terminate(item.target, h.json_or_text(item.input), recursive=bool(item.name))

    async def terminate(self, iid: str, reason: Any, recursive: bool = False) -> None:
        """Terminate `iid` (and with `recursive` the children it started that still run, theirs too)."""
        await self.control(iid, h.EXECUTION_TERMINATED, reason)
        if not recursive:
            return
        record = await self.store.read(iid)
        if record is None:
            return
        done = h.completed_ids(record.history)
        for item in record.history:
            if item["EventType"] == h.SUB_CREATED and int(item.get("EventId", -1)) not in done:
                child = await self.store.read(str(item.get("InstanceId")))
                if child is not None and not child.terminal and child.parent == iid:
                    await self.terminate(child.instance_id, reason, recursive=True)

    async def _commit(self, new: InstanceRecord, before: InstanceRecord, consumed: list[str]) -> None:
        """The one way an episode ends: `InstanceStore.commit` (one ETag-checked write listing the
        consumed inbox rows, then their clean-up), after which the consumed messages leave memory.
        A write refused on its ETag certainly did not land; any other failure may hide one that did,
        whose scheduled work would then never start (`_uncertain`)."""
        try:
            await self.store.commit(new, before, self._stored(consumed))
        except ConcurrencyConflict:
            raise
        except Exception:
            self._uncertain.add(new.instance_id)
            raise
        self._consumed(new.instance_id, consumed)

    async def _finish_after_signals(
        self, record: InstanceRecord, inbox: list[Message], consumed: list[str], marks: list[dict[str, Any]]
    ) -> bool:
        """End an instance whose last episode signalled entities, once all of them acknowledged."""
        _, acks, _, _ = take_batch(record, inbox, self.now())
        acked = acknowledged(record.history) | {event["RequestId"] for _, event in acks}
        sent = {e["SignalId"] for e in record.history if e["EventType"] == h.EVENT_SENT and e.get("SignalId")}
        if sent - acked:
            return False
        assert record.finishing is not None
        consumed = [*consumed, *(m.row_key for m, _ in acks)]
        marks = [*marks, *(event for _, event in acks)]
        status, output = record.finishing["status"], record.finishing["output"]
        new = _copy(record)
        new.finishing = None
        if status != "ContinuedAsNew":
            await self._finish(new, consumed, status, output, marks, before=record)
            return True
        _continue(new, record.finishing["input"])
        await self._commit(new, record, consumed)
        self.scheduler.cancel_prefix((record.instance_id, record.execution_id))
        self.notify(record.instance_id)
        return True

    def _after_commit(self, before: InstanceRecord, new: InstanceRecord, decision: Decision) -> None:
        """Start what a committed episode scheduled (and stop the timers it cancelled)."""
        for task_id in decision.canceled_timers:
            self.scheduler.cancel((new.instance_id, before.execution_id, task_id))
        sent = [item for item in decision.events if item["EventType"] == h.EVENT_SENT]
        self._spawn(self._dispatch(before, new, decision.work, sent), f"dispatch {new.instance_id}")
        if decision.status == "ContinuedAsNew":
            self.scheduler.cancel_prefix((new.instance_id, before.execution_id))
            self.notify(new.instance_id)

    async def _commit_only(
        self, record: InstanceRecord, consumed: list[str], status: str, marks: list[dict[str, Any]]
    ) -> None:
        new = _copy(record)
        new.status = status
        new.history = [*record.history, *marks] if record.history else []
        await self._commit(new, record, consumed)

    async def _finish(
        self,
        new: InstanceRecord,
        consumed: list[str],
        status: str,
        output: Any,
        marks: list[dict[str, Any]],
        before: InstanceRecord | None = None,
    ) -> None:
        """End the instance: tell the parent first (it drops a repeat), then commit."""
        before = before or new
        now = self.now()
        new = _copy(new) if new is before else new
        new.status = status
        new.output = json.dumps(output)
        if marks:
            new.history = [*new.history, *marks]
        result = json.dumps(output)
        new.history = [
            *new.history,
            h.event(h.EXECUTION_COMPLETED, now, OrchestrationStatus=status, Result=result),
        ]
        if new.parent and new.parent_task is not None:
            if status == "Completed":
                answer = h.event(h.SUB_COMPLETED, now, TaskScheduledId=new.parent_task, Result=result)
            else:
                answer = h.event(
                    h.SUB_FAILED,
                    now,
                    TaskScheduledId=new.parent_task,
                    Reason=f"Sub-orchestration '{new.name}' {status.lower()}: {output}",
                    Details="",
                )
            await self.send(new.parent, answer, new.parent_execution or "")
        await self._commit(new, before, consumed)
        self.scheduler.cancel_prefix((new.instance_id,))

    async def _recover(self, record: InstanceRecord, inbox: list[Message]) -> None:
        """Start again what the history scheduled and nothing completed (after a restart)."""
        for work, signal_key in unfinished_work(record, inbox):
            await self._start_work(record.instance_id, record.execution_id, work, signal_key, again=True)


def _remote_only(*_: Any) -> Any:
    raise RuntimeError("this orchestrator runs in a remote worker")  # pragma: no cover - never called


def _continue(record: InstanceRecord, input_text: str | None) -> None:
    """Turn `record` into the start of its next execution (continue-as-new)."""
    record.history = []
    record.execution_id = uuid.uuid4().hex
    record.input = input_text
    record.actions_seen = 0
    record.waits = {}


def _resumed(record: InstanceRecord) -> str:
    return "Running" if record.history else "Pending"


def _copy(record: InstanceRecord) -> InstanceRecord:
    return replace(record, history=list(record.history), waits=dict(record.waits))
