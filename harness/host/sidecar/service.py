"""`TaskHubSidecarService` on the local host's engine: clients start, read, wait for, signal and purge
instances; workers take work items over `GetWorkItems` and complete them.

Every call goes to the same engine and store the Durable HTTP API uses (`OrchestrationEngine`,
`InstanceStore`), so both APIs see the same instances. Bad input is an INVALID_ARGUMENT naming the
problem, an unknown instance NOT_FOUND, a start over a running instance ALREADY_EXISTS, storage
down or the hub's lease not held UNAVAILABLE: never an unexplained error.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn

import grpc
from azure.core.exceptions import AzureError
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from google.protobuf import empty_pb2

from ..entities.dispatcher import split_instance_id
from ..entities.store import EntityRecord, StorageUnavailable, instance_id, invalid_key_reason
from ..orchestrations import history as h
from ..orchestrations.engine import InstanceExists, OrchestrationEngine
from ..orchestrations.rewind import RewindRefused, rewind
from ..orchestrations.store import TERMINAL, InstanceFilter, InstanceRecord, invalid_instance_id
from . import convert
from .workitems import WorkItems

log = logging.getLogger(__name__)

WAIT_INTERVAL = 1.0  # seconds a wait goes without a look at storage, woken or not
HISTORY_CHUNK = 200  # events per HistoryChunk streamed
MAX_QUERY = 1000  # instances one query page holds at most
DEFAULT_QUERY = 100


class _Refused(Exception):
    """A call refused with a status code and a message."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _guarded(method: Callable[..., Awaitable[Any]]) -> Callable[..., Awaitable[Any]]:
    """Refusals and storage outages as gRPC statuses with a one-line message."""

    async def call(self: SidecarService, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            self._check_hub(context)
            return await method(self, request, context)
        except _Refused as exc:
            await context.abort(exc.code, exc.message)
        except (StorageUnavailable, AzureError) as exc:
            await context.abort(
                grpc.StatusCode.UNAVAILABLE, f"storage: {str(exc).splitlines()[0] if str(exc) else exc}"
            )

    call.__name__ = method.__name__
    call.__doc__ = method.__doc__
    return call


class SidecarService(stubs.TaskHubSidecarServiceServicer):
    """The service over one task hub's engine."""

    def __init__(self, engine: OrchestrationEngine, work: WorkItems, hub: str) -> None:
        self.engine = engine
        self.store = engine.store
        self.work = work
        self.hub = hub

    def _check_hub(self, context: grpc.aio.ServicerContext) -> None:
        """Refuse while this host does not hold the hub (its lease lost): another may write it."""
        problem = self.engine.gate() if self.engine.gate is not None else None
        if problem:
            raise _Refused(grpc.StatusCode.UNAVAILABLE, str(problem))

    async def _existing(self, iid: str) -> InstanceRecord:
        if not iid:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "instanceId is required")
        record = await self.store.read(iid)
        if record is None:
            raise _Refused(grpc.StatusCode.NOT_FOUND, f"no instance with id {iid!r}")
        return record

    # -- clients --------------------------------------------------------------------------------
    async def Hello(self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> empty_pb2.Empty:  # noqa: N802
        """The worker's and client's connection check."""
        return empty_pb2.Empty()

    @_guarded
    async def StartInstance(
        self, request: pb.CreateInstanceRequest, context: Any
    ) -> pb.CreateInstanceResponse:  # noqa: N802
        """Create an instance (or restart a finished one under its id)."""
        iid = request.instanceId or uuid.uuid4().hex
        problem = invalid_instance_id(iid)
        if problem is not None:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, problem)
        if not request.name:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "name (the orchestrator) is required")
        if self.engine.orchestrator(request.name) is None:  # an app's (2.x) names are known up front
            raise _Refused(
                grpc.StatusCode.NOT_FOUND,
                f"orchestrator function '{request.name}' is not defined by this app",
            )
        scheduled = None
        if request.HasField("scheduledStartTimestamp"):  # on the host's clock (virtual time applies)
            scheduled = convert.from_stamp(request.scheduledStartTimestamp)
        try:
            await self.engine.start(request.name, iid, convert.optional(request, "input"), scheduled)
        except InstanceExists as exc:
            raise _Refused(grpc.StatusCode.ALREADY_EXISTS, str(exc)) from None
        return pb.CreateInstanceResponse(instanceId=iid)

    @_guarded
    async def GetInstance(self, request: pb.GetInstanceRequest, context: Any) -> pb.GetInstanceResponse:  # noqa: N802
        """An instance's state; `exists=False` when there is none."""
        record = await self.store.read(request.instanceId) if request.instanceId else None
        if record is None:
            return pb.GetInstanceResponse(exists=False)
        return pb.GetInstanceResponse(
            exists=True, orchestrationState=convert.state(record, request.getInputsAndOutputs)
        )

    async def _wait(self, request: pb.GetInstanceRequest, done: Callable[[InstanceRecord], bool]) -> Any:
        """Wait (until the client's deadline) for the instance to reach `done`."""
        iid = request.instanceId
        while True:
            with self.store.changes.watch(iid) as changed:
                record = await self.store.read(iid)
                if record is not None and done(record):
                    return pb.GetInstanceResponse(
                        exists=True, orchestrationState=convert.state(record, request.getInputsAndOutputs)
                    )
                try:
                    await asyncio.wait_for(changed.wait(), WAIT_INTERVAL)
                except TimeoutError:
                    pass

    @_guarded
    async def WaitForInstanceStart(
        self, request: pb.GetInstanceRequest, context: Any
    ) -> pb.GetInstanceResponse:  # noqa: N802
        """Wait until the instance left Pending."""
        return await self._wait(request, lambda record: record.status != "Pending")

    @_guarded
    async def WaitForInstanceCompletion(  # noqa: N802
        self, request: pb.GetInstanceRequest, context: Any
    ) -> pb.GetInstanceResponse:
        """Wait until the instance completed, failed or was terminated."""
        return await self._wait(request, lambda record: record.status in TERMINAL)

    @_guarded
    async def RaiseEvent(self, request: pb.RaiseEventRequest, context: Any) -> pb.RaiseEventResponse:  # noqa: N802
        """An external event for a running instance."""
        record = await self._existing(request.instanceId)
        if not request.name:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "name (the event's) is required")
        await self.engine.raise_event(record.instance_id, request.name, convert.optional(request, "input"))
        return pb.RaiseEventResponse()

    @_guarded
    async def TerminateInstance(self, request: pb.TerminateRequest, context: Any) -> pb.TerminateResponse:  # noqa: N802
        """Terminate: applied in order with the instance's other messages (`recursive`: the
        sub-orchestrations it started that still run too, theirs likewise)."""
        record = await self._existing(request.instanceId)
        output = convert.optional(request, "output")
        reason = h.json_or_text(output) if output is not None else None
        await self.engine.terminate(record.instance_id, reason, recursive=request.recursive)
        self.work.withdraw(record.instance_id)
        return pb.TerminateResponse()

    @_guarded
    async def SuspendInstance(self, request: pb.SuspendRequest, context: Any) -> pb.SuspendResponse:  # noqa: N802
        """Suspend: new events wait until it is resumed."""
        record = await self._existing(request.instanceId)
        await self.engine.control(
            record.instance_id, h.EXECUTION_SUSPENDED, convert.optional(request, "reason")
        )
        self.work.withdraw(record.instance_id)
        return pb.SuspendResponse()

    @_guarded
    async def ResumeInstance(self, request: pb.ResumeRequest, context: Any) -> pb.ResumeResponse:  # noqa: N802
        """Resume a suspended instance."""
        record = await self._existing(request.instanceId)
        await self.engine.control(
            record.instance_id, h.EXECUTION_RESUMED, convert.optional(request, "reason")
        )
        return pb.ResumeResponse()

    @_guarded
    async def PurgeInstances(
        self, request: pb.PurgeInstancesRequest, context: Any
    ) -> pb.PurgeInstancesResponse:  # noqa: N802
        """Delete one instance, or the finished ones a filter matches."""
        which = request.WhichOneof("request")
        if which == "instanceId" and request.recursive:
            deleted = 0
            for iid in await self._tree(request.instanceId):
                deleted += int(await self.engine.purge(iid))
        elif which == "instanceId":
            deleted = int(await self.engine.purge(request.instanceId))
        elif which == "purgeInstanceFilter":
            found = request.purgeInstanceFilter
            statuses = {convert.STATUS_NAMES.get(s, "") for s in found.runtimeStatus} or set(TERMINAL)
            where = InstanceFilter(
                statuses,
                convert.from_stamp(found.createdTimeFrom) if found.HasField("createdTimeFrom") else None,
                convert.from_stamp(found.createdTimeTo) if found.HasField("createdTimeTo") else None,
            )
            deleted, after = 0, None
            while True:
                page, after = await self.store.matching_ids(where, MAX_QUERY, after)
                deleted += await self.engine.purge_many(page)
                if after is None:
                    break
        else:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "give an instanceId or a purgeInstanceFilter")
        return pb.PurgeInstancesResponse(
            deletedInstanceCount=deleted, isComplete=convert.wrappers_pb2.BoolValue(value=True)
        )

    async def _tree(self, iid: str) -> list[str]:
        """`iid` and the sub-orchestrations its history started (theirs too), parents first."""
        found, todo = [], [iid]
        while todo:
            current = todo.pop(0)
            found.append(current)
            record = await self.store.read(current)
            for item in record.history if record is not None else []:
                child = str(item.get("InstanceId") or "")
                if item["EventType"] == h.SUB_CREATED and child not in found and child not in todo:
                    kid = await self.store.read(child)
                    if kid is not None and kid.parent == current:
                        todo.append(child)
        return found

    @_guarded
    async def QueryInstances(
        self, request: pb.QueryInstancesRequest, context: Any
    ) -> pb.QueryInstancesResponse:  # noqa: N802
        """A page of instances matching the query, in instance-id order."""
        query = request.query
        if query.maxInstanceCount < 0:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "maxInstanceCount must not be negative")
        top = min(query.maxInstanceCount or DEFAULT_QUERY, MAX_QUERY)  # more come with the token
        where = InstanceFilter(
            {convert.STATUS_NAMES.get(s, "") for s in query.runtimeStatus} or None,
            convert.from_stamp(query.createdTimeFrom) if query.HasField("createdTimeFrom") else None,
            convert.from_stamp(query.createdTimeTo) if query.HasField("createdTimeTo") else None,
            convert.optional(query, "instanceIdPrefix") or None,
        )
        records, last = await self.store.list(
            where, top, convert.optional(query, "continuationToken") or None
        )
        return pb.QueryInstancesResponse(
            orchestrationState=[convert.state(r, query.fetchInputsAndOutputs) for r in records],
            continuationToken=convert.text(last),
        )

    @_guarded
    async def RestartInstance(
        self, request: pb.RestartInstanceRequest, context: Any
    ) -> pb.RestartInstanceResponse:  # noqa: N802
        """Start a finished instance again with its input (under a new id when asked)."""
        record = await self._existing(request.instanceId)
        iid = uuid.uuid4().hex if request.restartWithNewInstanceId else record.instance_id
        try:
            await self.engine.start(record.name, iid, record.input)
        except InstanceExists as exc:
            raise _Refused(grpc.StatusCode.FAILED_PRECONDITION, str(exc)) from None
        return pb.RestartInstanceResponse(instanceId=iid)

    async def StreamInstanceHistory(  # noqa: N802
        self, request: pb.StreamInstanceHistoryRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.HistoryChunk]:
        """The current execution's history, in chunks."""
        try:
            self._check_hub(context)
            record = await self._existing(request.instanceId)
            wanted = convert.optional(request, "executionId")
            if wanted and wanted != record.execution_id:
                raise _Refused(
                    grpc.StatusCode.NOT_FOUND, f"execution {wanted!r} is not the instance's current one"
                )
        except _Refused as exc:
            await context.abort(exc.code, exc.message)
        events = convert.to_events(record.history, record)
        for start in range(0, len(events), HISTORY_CHUNK):
            yield pb.HistoryChunk(events=events[start : start + HISTORY_CHUNK])

    async def CreateTaskHub(self, request: pb.CreateTaskHubRequest, context: Any) -> pb.CreateTaskHubResponse:  # noqa: N802
        """The hub's storage is created when the sidecar starts: nothing to do."""
        return pb.CreateTaskHubResponse()

    @_guarded
    async def RewindInstance(
        self, request: pb.RewindInstanceRequest, context: Any
    ) -> pb.RewindInstanceResponse:  # noqa: N802
        """Rewind a Failed instance: the episode that failed is dropped and what it answered (the
        failed activity or sub-orchestration) runs again (the host's rewind, `orchestrations/rewind.py`)."""
        if not request.instanceId:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "instanceId is required")
        try:
            await rewind(self.engine, request.instanceId, None)
        except RewindRefused as exc:
            codes = {404: grpc.StatusCode.NOT_FOUND, 400: grpc.StatusCode.INVALID_ARGUMENT}
            raise _Refused(codes.get(exc.status, grpc.StatusCode.FAILED_PRECONDITION), str(exc)) from None
        return pb.RewindInstanceResponse()

    @_guarded
    async def ListInstanceIds(  # noqa: N802
        self, request: pb.ListInstanceIdsRequest, context: Any
    ) -> pb.ListInstanceIdsResponse:
        """Ids of finished instances in completion-time order (optionally by status and completion-time
        range), a page at a time; `lastInstanceKey` continues after the page's last."""
        statuses = {convert.STATUS_NAMES.get(s, "") for s in request.runtimeStatus} or set(TERMINAL)
        since = (
            convert.from_stamp(request.completedTimeFrom) if request.HasField("completedTimeFrom") else None
        )
        until = convert.from_stamp(request.completedTimeTo) if request.HasField("completedTimeTo") else None
        cursor: tuple[str, str] | None = None
        if request.HasField("lastInstanceKey") and request.lastInstanceKey.value:
            stamp_text, sep, last_id = request.lastInstanceKey.value.partition("|")
            if not sep:
                raise _Refused(
                    grpc.StatusCode.INVALID_ARGUMENT, "lastInstanceKey is not one this sidecar gave"
                )
            cursor = (stamp_text, last_id)
        matching: list[tuple[str, str]] = []
        after = None
        while True:  # every finished instance is read: a local hub holds few enough
            records, after = await self.store.list(InstanceFilter(statuses & set(TERMINAL)), MAX_QUERY, after)
            for record in records:
                done_at = record.updated or record.created
                if done_at is None or (since and done_at < since) or (until and done_at >= until):
                    continue
                matching.append((h.iso(done_at), record.instance_id))
            if after is None:
                break
        matching.sort()
        if cursor is not None:
            matching = [key for key in matching if key > cursor]
        size = request.pageSize if request.pageSize > 0 else DEFAULT_QUERY
        page = matching[:size]
        more = len(matching) > size
        last = convert.text(f"{page[-1][0]}|{page[-1][1]}") if more and page else None
        return pb.ListInstanceIdsResponse(instanceIds=[iid for _, iid in page], lastInstanceKey=last)

    async def DeleteTaskHub(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Not offered: a sidecar's hub is deleted with its data folder."""
        await _abort(
            context, grpc.StatusCode.UNIMPLEMENTED, "DeleteTaskHub is not supported; remove the data folder"
        )

    async def SkipGracefulOrchestrationTerminations(self, request: Any, context: Any) -> Any:  # noqa: N802
        """Not offered yet."""
        await _abort(
            context, grpc.StatusCode.UNIMPLEMENTED, "SkipGracefulOrchestrationTerminations is not supported"
        )

    # -- entities -------------------------------------------------------------------------------
    def _entity_id(self, iid: str) -> tuple[str, str]:
        name, key = split_instance_id(iid) if iid.startswith("@") and iid.count("@") >= 2 else ("", "")
        problem = invalid_key_reason(name, key) if name else f"{iid!r} is not an entity id (@name@key)"
        if problem is not None:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, problem)
        return name.lower(), key

    @_guarded
    async def SignalEntity(self, request: pb.SignalEntityRequest, context: Any) -> pb.SignalEntityResponse:  # noqa: N802
        """An operation for an entity, applied in order by its worker (accepted once stored)."""
        name, key = self._entity_id(request.instanceId)
        if not request.name:
            raise _Refused(grpc.StatusCode.INVALID_ARGUMENT, "name (the operation) is required")
        dispatcher = self.engine.entities
        input_text = convert.optional(request, "input")
        if request.HasField("scheduledTime"):  # on the host's clock (virtual time applies)
            due = convert.from_stamp(request.scheduledTime)
            if due > self.engine.now():
                await dispatcher.schedule(name, key, request.name, input_text, due)
                return pb.SignalEntityResponse()
        signal = await dispatcher.store.add_signal(
            name, key, request.name, convert.optional(request, "input")
        )
        dispatcher.notify(instance_id(name, key), signal)
        return pb.SignalEntityResponse()

    @_guarded
    async def GetEntity(self, request: pb.GetEntityRequest, context: Any) -> pb.GetEntityResponse:  # noqa: N802
        """An entity's state; `exists=False` when it has none."""
        name, key = self._entity_id(request.instanceId)
        record = await self.engine.entities.store.read(instance_id(name, key))
        if record is None or not record.exists:
            return pb.GetEntityResponse(exists=False)
        return pb.GetEntityResponse(exists=True, entity=_entity(record, request.includeState))

    @_guarded
    async def QueryEntities(self, request: pb.QueryEntitiesRequest, context: Any) -> pb.QueryEntitiesResponse:  # noqa: N802
        """Entities in instance-id order: all of them, or those whose id starts with
        `instanceIdStartsWith` (`@name@...`, or `@na` for names starting so; names are case-insensitive),
        optionally by last-modified range; `includeTransient`: also those with no state (locked)."""
        query = request.query
        prefix = convert.optional(query, "instanceIdStartsWith") or ""
        if prefix and not prefix.startswith("@"):
            prefix = "@" + prefix  # a bare entity name, as some clients give it
        parts = prefix.split("@", 2)
        name = parts[1].lower() if len(parts) == 3 else ""  # the whole name is known: one range
        lowered = "@".join([parts[0], parts[1].lower(), *parts[2:]]) if len(parts) > 1 else prefix
        top = min(
            query.pageSize.value if query.HasField("pageSize") and query.pageSize.value > 0 else 100,
            MAX_QUERY,
        )
        after = convert.optional(query, "continuationToken") or None
        store = self.engine.entities.store
        found: list[pb.EntityMetadata] = []
        while True:
            page, after = await store.list_entities(
                name, top, after, query.includeState, transient=query.includeTransient
            )
            for record in page:
                if not record.instance_id.startswith(lowered):
                    continue
                stamp = record.last_operation_time
                if query.HasField("lastModifiedFrom") and (
                    stamp is None or stamp < convert.from_stamp(query.lastModifiedFrom)
                ):
                    continue
                if query.HasField("lastModifiedTo") and (
                    stamp is None or stamp >= convert.from_stamp(query.lastModifiedTo)
                ):
                    continue
                found.append(_entity(record, query.includeState))
            if after is None or len(found) >= top:
                break
        return pb.QueryEntitiesResponse(entities=found, continuationToken=convert.text(after))

    @_guarded
    async def CleanEntityStorage(  # noqa: N802
        self, request: pb.CleanEntityStorageRequest, context: Any
    ) -> pb.CleanEntityStorageResponse:
        """Release the locks of orchestrations that are gone or finished (`releaseOrphanedLocks`),
        and remove the rows of entities with no state, no lock and nothing queued (`removeEmptyEntities`)."""
        dispatcher = self.engine.entities
        store = dispatcher.store
        released = removed = 0
        after = convert.optional(request, "continuationToken") or None
        page, after = await store.list_entities("", MAX_QUERY, after, False, transient=True)
        for listed in page:
            iid = listed.instance_id
            async with dispatcher.lock(iid):
                record = await store.read(iid)
                if record is None:
                    continue
                if request.releaseOrphanedLocks and record.locked_by:
                    owner = await self.store.read(record.lock_owner) if record.lock_owner else None
                    if owner is None or owner.terminal:
                        name, key = split_instance_id(iid)
                        state = record.state if record.exists else None
                        await store.commit(
                            record, name, key, record.exists, state, [], lock=None, released=record.locked_by
                        )
                        released += 1
                        dispatcher.notify(iid)  # what waited for the lock goes on
                        continue
                empty = not record.exists and not record.locked_by
                if request.removeEmptyEntities and empty and not await store.pending(iid, 1):
                    await store.purge(iid)
                    dispatcher.discard(iid)
                    removed += 1
        return pb.CleanEntityStorageResponse(
            emptyEntitiesRemoved=removed,
            orphanedLocksReleased=released,
            continuationToken=convert.text(after),
        )

    async def CompleteEntityTask(
        self, request: pb.EntityBatchResult, context: Any
    ) -> pb.CompleteTaskResponse:  # noqa: N802
        """A worker's answer to an entity batch."""
        self.work.complete(request.completionToken, request)
        return pb.CompleteTaskResponse()

    async def AbandonTaskEntityWorkItem(  # noqa: N802
        self, request: pb.AbandonEntityTaskRequest, context: Any
    ) -> pb.AbandonEntityTaskResponse:
        """A worker gave an entity batch back."""
        self.work.abandon(request.completionToken)
        return pb.AbandonEntityTaskResponse()

    # -- workers --------------------------------------------------------------------------------
    async def GetWorkItems(  # noqa: N802
        self, request: pb.GetWorkItemsRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[pb.WorkItem]:
        """The work-item stream of one worker."""
        try:
            self._check_hub(context)
        except _Refused as exc:
            await context.abort(exc.code, exc.message)
        async for item in self.work.stream():
            yield item

    async def CompleteOrchestratorTask(
        self, request: pb.OrchestratorResponse, context: Any
    ) -> pb.CompleteTaskResponse:  # noqa: N802
        """A worker's answer to an episode."""
        if request.isPartial:
            await _abort(
                context, grpc.StatusCode.UNIMPLEMENTED, "chunked orchestrator responses are not supported yet"
            )
        self.work.complete(request.completionToken, request)
        return pb.CompleteTaskResponse()

    async def CompleteActivityTask(
        self, request: pb.ActivityResponse, context: Any
    ) -> pb.CompleteTaskResponse:  # noqa: N802
        """A worker's answer to an activity."""
        self.work.complete(request.completionToken, request)
        return pb.CompleteTaskResponse()

    async def AbandonTaskOrchestratorWorkItem(  # noqa: N802
        self, request: pb.AbandonOrchestrationTaskRequest, context: Any
    ) -> pb.AbandonOrchestrationTaskResponse:
        """A worker gave an episode back: another (or the same) worker gets it again."""
        self.work.abandon(request.completionToken)
        return pb.AbandonOrchestrationTaskResponse()

    async def AbandonTaskActivityWorkItem(  # noqa: N802
        self, request: pb.AbandonActivityTaskRequest, context: Any
    ) -> pb.AbandonActivityTaskResponse:
        """A worker gave an activity back."""
        self.work.abandon(request.completionToken)
        return pb.AbandonActivityTaskResponse()


def _entity(record: EntityRecord, with_state: bool) -> pb.EntityMetadata:
    metadata = pb.EntityMetadata(
        instanceId=record.instance_id, lastModifiedTime=convert.stamp(record.last_operation_time)
    )
    if record.locked_by:  # the orchestration whose critical section holds it (as DTFx shows it)
        metadata.lockedBy.value = record.lock_owner or record.locked_by
    if with_state and record.state is not None:
        metadata.serializedState.value = record.state
    return metadata


async def _abort(context: Any, code: grpc.StatusCode, message: str) -> NoReturn:
    await context.abort(code, message)
    raise AssertionError("unreachable")  # pragma: no cover - abort raises
