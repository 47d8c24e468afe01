"""Work items for connected workers: the engine's `RemoteExecutor` over `GetWorkItems` streams.

An episode or an activity the engine runs becomes a `WorkItem` with a completion token, queued
until a worker's stream takes it, and the engine awaits the worker's `CompleteOrchestratorTask` /
`CompleteActivityTask` for that token. A stream that ends (the worker disconnected, crashed or
reconnects) puts what it took and did not complete back at the front of the queue, so the next
worker to connect gets it again; an abandoned item is queued again too. A completion for a token
no longer awaited (a second answer after a redelivery, or one for a run before a restart) is
dropped: the engine has its answer already, or the history shows the work as not done and
recovery has queued it again. Nothing here is stored: what the engine awaits is recoverable
from its history (an episode runs again from its inbox, an activity is started again), so a
sidecar killed at any moment loses nothing.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

from ..entities.dispatcher import split_instance_id
from ..entities.store import PendingSignal
from ..orchestrations import history as h
from ..orchestrations.executor import ActivityFailed
from ..orchestrations.replay import Decision, Work
from ..orchestrations.store import InstanceRecord
from ..storage.tables import ConcurrencyConflict
from . import convert

log = logging.getLogger(__name__)

PING_SECONDS = 15.0  # a stream with nothing to send pings the worker (its silent-disconnect check)
CHANGE_WINDOW = 10.0  # seconds a change waits for the episode that may have read the inbox before it


@dataclass
class _Pending:
    """One work item awaiting its completion."""

    token: str
    item: pb.WorkItem
    done: asyncio.Future[Any]
    kind: str = field(default="orchestrator")
    taken: bool = False  # a worker's stream has it now


class EpisodeWithdrawn(ConcurrencyConflict):
    """An episode no worker had taken yet was withdrawn because its instance changed (terminated or
    suspended): the engine runs the episode again, and now takes the control message first. A
    ConcurrencyConflict, so the engine retries at once and quietly, as after a concurrent write."""


class WorkItems:
    """The queue of work items, the streams that take them, and the completions awaited."""

    buffers_events = True  # durabletask workers buffer external events no wait asked for yet

    def __init__(self) -> None:
        self._queue: deque[_Pending] = deque()
        self._awaited: dict[str, _Pending] = {}
        self._episodes: dict[str, _Pending] = {}  # the episode of each instance that awaits a worker
        # Instances changed (terminated, suspended) with no episode queued: the episode that may have
        # read their inbox before the change and not queued yet is withdrawn when it comes.
        self._changed: dict[str, float] = {}
        self._available = asyncio.Event()
        self.streams = 0  # workers connected now
        self.connected = asyncio.Event()  # set while at least one worker is connected

    # -- the engine's side (RemoteExecutor) -------------------------------------------------------
    def orchestrator_name(self, name: str) -> str | None:
        """Every name may be an orchestrator: the worker decides (and fails an unknown one)."""
        return name or None

    async def decide(self, record: InstanceRecord, events: list[dict[str, Any]], now: datetime) -> Decision:
        """Hand one episode to a worker and turn its answer into the engine's decision."""
        if self._changed.pop(record.instance_id, None) is not None:
            raise EpisodeWithdrawn(f"instance {record.instance_id} changed while its episode started")
        new_events = [h.event(h.ORCHESTRATOR_STARTED, now), *events]
        item = pb.WorkItem(orchestratorRequest=convert.request(record, new_events))
        response = await self._run(item, "orchestrator", record.instance_id)
        return convert.decision(record, new_events, now, response)

    def withdraw(self, iid: str) -> bool:
        """Withdraw `iid`'s episode if no worker has taken it (with no worker connected, it would
        otherwise wait, and a terminate or suspend behind it with it); True when one was."""
        now = asyncio.get_running_loop().time()
        for old in [key for key, at in self._changed.items() if now - at > CHANGE_WINDOW]:
            del self._changed[old]
        pending = self._episodes.get(iid)
        if pending is None or pending.done.done():
            self._changed[iid] = now
            return False
        if pending.taken:
            return False
        pending.done.set_exception(
            EpisodeWithdrawn(f"instance {iid} changed while its episode waited for a worker")
        )
        return True

    async def activity(self, iid: str, execution: str, work: Work) -> str | None:
        """Hand one activity to a worker; its result, or ActivityFailed."""
        activity = pb.ActivityRequest(
            name=work.name,
            input=convert.text(work.input),
            orchestrationInstance=pb.OrchestrationInstance(
                instanceId=iid, executionId=convert.text(execution)
            ),
            taskId=work.task_id,
        )
        response = await self._run(pb.WorkItem(activityRequest=activity), "activity")
        if response.HasField("failureDetails") and (
            response.failureDetails.errorMessage or response.failureDetails.errorType
        ):
            fields = convert.failure_fields(response.failureDetails)
            raise ActivityFailed(fields.pop("Reason"), fields.pop("Details"), **fields)
        return convert.optional(response, "result")

    async def entity_batch(
        self, iid: str, exists: bool, state: str | None, batch: list[PendingSignal]
    ) -> dict[str, Any]:
        """Hand a batch of entity operations to a worker; its answer in the shape the entity
        dispatcher reads (the SDK's), or an error when the batch failed as a whole."""
        operations = [
            pb.OperationRequest(
                operation=s.operation, requestId=s.row_key, input=convert.text(_entity_input(s))
            )
            for s in batch
        ]
        request = pb.EntityBatchRequest(
            instanceId=iid, entityState=convert.text(state if exists else None), operations=operations
        )
        result = await self._run(pb.WorkItem(entityRequest=request), "entity")
        if result.HasField("failureDetails") and (
            result.failureDetails.errorMessage or result.failureDetails.errorType
        ):
            raise RuntimeError(convert.failure_fields(result.failureDetails)["Reason"])
        results = []
        for outcome in result.results:
            if outcome.HasField("failure"):
                reason = convert.failure_fields(outcome.failure.failureDetails)["Reason"]
                results.append({"isError": True, "result": json.dumps(reason)})
            else:
                results.append({"isError": False, "result": convert.optional(outcome.success, "result")})
        signals: list[dict[str, Any]] = []
        starts: list[dict[str, Any]] = []
        for action in result.actions:
            if action.HasField("startNewOrchestration"):
                start = action.startNewOrchestration
                due = convert.from_stamp(start.scheduledTime) if start.HasField("scheduledTime") else None
                starts.append(
                    {
                        "name": start.name,
                        "instanceId": start.instanceId,
                        "input": convert.optional(start, "input"),
                        "scheduled": due,
                    }
                )
            elif action.HasField("sendSignal"):
                signal = action.sendSignal
                if signal.instanceId.count("@") < 2 or not signal.instanceId.startswith("@"):
                    log.warning("entity %s signalled %r, not an entity id; dropped", iid, signal.instanceId)
                    continue
                name, key = split_instance_id(signal.instanceId)
                target = {"name": name, "key": key}
                signals.append(
                    {"target": target, "name": signal.name, "input": convert.optional(signal, "input")}
                )
            else:
                log.warning(
                    "entity %s: %s actions are not supported by the sidecar yet; dropped",
                    iid,
                    action.WhichOneof("operationActionType"),
                )
        exists_now = result.HasField("entityState")
        return {
            "results": results,
            "entityExists": exists_now,
            "entityState": result.entityState.value if exists_now else None,
            "signals": signals,
            "starts": starts,
        }

    async def _run(self, item: pb.WorkItem, kind: str, iid: str | None = None) -> Any:
        token = uuid.uuid4().hex
        item.completionToken = token
        pending = _Pending(token, item, asyncio.get_running_loop().create_future(), kind)
        self._awaited[token] = pending
        if iid is not None:
            self._episodes[iid] = pending
        self._queue.append(pending)
        self._available.set()
        try:
            return await pending.done
        finally:
            self._awaited.pop(token, None)
            if iid is not None and self._episodes.get(iid) is pending:
                del self._episodes[iid]

    # -- the workers' side (the gRPC service) ---------------------------------------------------
    def complete(self, token: str, response: Any) -> bool:
        """A worker's answer for `token`; False when nothing awaits it (stale or repeated)."""
        pending = self._awaited.get(token)
        if pending is None or pending.done.done():
            log.debug("completion for token %s not awaited (stale); dropped", token)
            return False
        pending.done.set_result(response)
        return True

    def abandon(self, token: str) -> None:
        """A worker gave an item back: queue it again."""
        pending = self._awaited.get(token)
        if pending is not None and not pending.done.done():
            pending.taken = False
            self._queue.append(pending)
            self._available.set()

    def _next(self) -> _Pending | None:
        while self._queue:
            pending = self._queue.popleft()
            if not pending.done.done() and pending.token in self._awaited:
                return pending
        return None

    async def stream(self) -> AsyncIterator[pb.WorkItem]:
        """The work items for one connected worker, health pings when there are none; what it took
        and did not complete goes back to the queue when the stream ends, however it ends."""
        taken: dict[str, _Pending] = {}
        self.streams += 1
        self.connected.set()
        log.info("worker connected (%d connected)", self.streams)
        try:
            while True:
                for token in [t for t, p in taken.items() if p.done.done()]:
                    del taken[token]
                pending = self._next()
                if pending is None:
                    self._available.clear()
                    try:
                        await asyncio.wait_for(self._available.wait(), PING_SECONDS)
                    except TimeoutError:
                        yield pb.WorkItem(healthPing=pb.HealthPing())
                    continue
                taken[pending.token] = pending
                pending.taken = True
                yield pending.item
        finally:
            self.streams -= 1
            if not self.streams:
                self.connected.clear()
            back = [p for p in taken.values() if not p.done.done() and p.token in self._awaited]
            for pending in back:
                pending.taken = False
            self._queue.extendleft(reversed(back))
            if back:
                self._available.set()
            log.info(
                "worker disconnected (%d connected); %d work items queued again", self.streams, len(back)
            )


def _entity_input(signal: PendingSignal) -> str | None:
    """An operation's input as JSON text. The engine's dispatch encodes an orchestration's entity input
    once more, as the 1.x entity SDK reads it; a client's signal is stored as it came."""
    if signal.parent and signal.input is not None:
        decoded = json.loads(signal.input)
        return decoded if isinstance(decoded, str) else signal.input
    return signal.input
