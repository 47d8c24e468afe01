"""Conversion at the edge: the host's history (DTFx JSON events) to protobuf `HistoryEvent`s, and a
worker's `OrchestratorResponse` to the engine's `Decision`. Pure, so the mapping is testable alone.

The host keeps one history model for both protocols: a task id is the event's `EventId` (the
durabletask worker numbers its actions from 0 per execution, as the 1.x SDK does), completions name
it in `TaskScheduledId`/`TimerId`, and a failure keeps the protocol's own failure details beside the
`Reason`/`Details` the instance API shows. One difference: a durabletask retry schedules the failed
task again under the same id, where the engine needs an id per attempt; such an attempt gets a host id
from `RETRY_IDS` on, its event keeps the worker's id in `WorkerId`, and the worker is shown its own.
Events only the host reads (signal acknowledgements, suspend/resume/terminate marks) are not handed
to the worker.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb
from google.protobuf import timestamp_pb2, wrappers_pb2

from ..entities import locks
from ..orchestrations import history as h
from ..orchestrations.replay import Decision, Work
from ..orchestrations.store import InstanceRecord

STATUSES = {
    "Pending": pb.ORCHESTRATION_STATUS_PENDING,
    "Running": pb.ORCHESTRATION_STATUS_RUNNING,
    "Completed": pb.ORCHESTRATION_STATUS_COMPLETED,
    "ContinuedAsNew": pb.ORCHESTRATION_STATUS_CONTINUED_AS_NEW,
    "Failed": pb.ORCHESTRATION_STATUS_FAILED,
    "Terminated": pb.ORCHESTRATION_STATUS_TERMINATED,
    "Suspended": pb.ORCHESTRATION_STATUS_SUSPENDED,
}
STATUS_NAMES = {number: name for name, number in STATUSES.items()}
STATUS_NAMES[pb.ORCHESTRATION_STATUS_CANCELED] = "Terminated"
_ENGINE_FAILURE = re.compile(r"^Orchestrator function '[^']*' failed: ")


def text(value: str | None) -> wrappers_pb2.StringValue | None:
    """A protobuf StringValue, or None (unset) for None."""
    return None if value is None else wrappers_pb2.StringValue(value=value)


def optional(message: Any, name: str) -> str | None:
    """A StringValue field's text, None when unset."""
    return getattr(message, name).value if message.HasField(name) else None


def stamp(at: datetime | str | None) -> timestamp_pb2.Timestamp | None:
    """A protobuf Timestamp from a datetime or a history time text."""
    if at is None:
        return None
    if isinstance(at, str):
        at = h.parse_time(at)
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(at.astimezone(UTC))
    return result


def from_stamp(value: timestamp_pb2.Timestamp) -> datetime:
    """A protobuf Timestamp as an aware UTC datetime."""
    return value.ToDatetime(tzinfo=UTC)


def failure(details: dict[str, Any] | None, reason: str = "", stack: str = "") -> pb.TaskFailureDetails:
    """Failure details from the stored ones, or from a host failure's reason and details."""
    if details:
        result = pb.TaskFailureDetails(
            errorType=str(details.get("errorType") or ""),
            errorMessage=str(details.get("errorMessage") or ""),
            isNonRetriable=bool(details.get("isNonRetriable")),
        )
        if details.get("stackTrace") is not None:
            result.stackTrace.value = str(details["stackTrace"])
        return result
    kind, sep, message = reason.partition(": ")
    simple = sep and kind.replace(".", "").replace("_", "").isalnum() and " " not in kind
    result = pb.TaskFailureDetails(
        errorType=kind if simple else "TaskFailedException", errorMessage=message if simple else reason
    )
    if stack:
        result.stackTrace.value = stack
    return result


def failure_fields(details: pb.TaskFailureDetails) -> dict[str, Any]:
    """What a history event keeps of a protocol failure: `Reason`, `Details` and the details."""
    stack = details.stackTrace.value if details.HasField("stackTrace") else None
    reason = f"{details.errorType}: {details.errorMessage}" if details.errorType else details.errorMessage
    kept = {"errorType": details.errorType, "errorMessage": details.errorMessage, "stackTrace": stack}
    if details.isNonRetriable:
        kept["isNonRetriable"] = True
    return {"Reason": reason, "Details": stack or "", "FailureDetails": kept}


RETRY_IDS = 1_000_000_000  # host task ids of retried attempts start here (workers number from 0)


def worker_ids(history: list[dict[str, Any]]) -> dict[int, int]:
    """Host task id -> the worker's, for the attempts that got a host id of their own."""
    return {int(item["EventId"]): int(item["WorkerId"]) for item in history if "WorkerId" in item}


def to_event(
    item: dict[str, Any],
    record: InstanceRecord,
    ids: dict[int, int] | None = None,
    sections: set[str] | None = None,
) -> pb.HistoryEvent | None:
    """One stored history event as the worker reads it (task ids as the worker knows them, `ids`;
    the answer to one of the critical sections' lock requests, `sections`, is their grant); None
    for the host's own marks."""
    ids = ids or {}
    kind = item["EventType"]
    event_id = int(item.get("EventId", -1))
    event = pb.HistoryEvent(eventId=ids.get(event_id, event_id), timestamp=stamp(item.get("Timestamp")))
    if kind == h.EXECUTION_STARTED:
        started = event.executionStarted
        started.name = str(item.get("Name") or record.name)
        if item.get("Input") is not None:
            started.input.value = item["Input"]
        started.orchestrationInstance.instanceId = record.instance_id
        started.orchestrationInstance.executionId.value = record.execution_id
        if record.scheduled_start is not None:
            started.scheduledStartTimestamp.CopyFrom(stamp(record.scheduled_start))
        if record.parent:
            started.parentInstance.orchestrationInstance.instanceId = record.parent
            started.parentInstance.taskScheduledId = int(record.parent_task or 0)
    elif kind == h.ORCHESTRATOR_STARTED:
        event.orchestratorStarted.SetInParent()
    elif kind == h.ORCHESTRATOR_COMPLETED:
        event.orchestratorCompleted.SetInParent()
    elif kind == h.TASK_SCHEDULED:
        event.taskScheduled.name = str(item.get("Name"))
        if item.get("Input") is not None:
            event.taskScheduled.input.value = item["Input"]
    elif kind in (h.TASK_COMPLETED, h.SUB_COMPLETED):
        done = event.taskCompleted if kind == h.TASK_COMPLETED else event.subOrchestrationInstanceCompleted
        done.taskScheduledId = ids.get(int(item["TaskScheduledId"]), int(item["TaskScheduledId"]))
        if item.get("Result") is not None:
            done.result.value = item["Result"]
    elif kind in (h.TASK_FAILED, h.SUB_FAILED):
        failed = event.taskFailed if kind == h.TASK_FAILED else event.subOrchestrationInstanceFailed
        failed.taskScheduledId = ids.get(int(item["TaskScheduledId"]), int(item["TaskScheduledId"]))
        details = failure(
            item.get("FailureDetails"), str(item.get("Reason") or ""), str(item.get("Details") or "")
        )
        failed.failureDetails.CopyFrom(details)
    elif kind == h.SUB_CREATED:
        created = event.subOrchestrationInstanceCreated
        created.instanceId = str(item.get("InstanceId"))
        created.name = str(item.get("Name"))
        if item.get("Input") is not None:
            created.input.value = item["Input"]
    elif kind == h.TIMER_CREATED:
        event.timerCreated.fireAt.CopyFrom(stamp(item["FireAt"]))
    elif kind == h.TIMER_FIRED:
        event.timerFired.timerId = int(item["TimerId"])
        event.timerFired.fireAt.CopyFrom(stamp(item["FireAt"]))
    elif kind == h.EXECUTION_COMPLETED:
        status = str(item.get("OrchestrationStatus") or "Completed")
        event.executionCompleted.orchestrationStatus = STATUSES.get(status, pb.ORCHESTRATION_STATUS_COMPLETED)
        if status == "Failed":
            message = h.json_or_text(item.get("Result"))
            reason = message if isinstance(message, str) else json.dumps(message)
            event.executionCompleted.failureDetails.CopyFrom(
                failure(None, _ENGINE_FAILURE.sub("", reason, count=1))
            )
        elif item.get("Result") is not None:
            event.executionCompleted.result.value = item["Result"]
    elif kind == h.EVENT_SENT and item.get("Event"):
        event.eventSent.instanceId = str(item.get("InstanceId"))
        event.eventSent.name = str(item.get("Name"))
        if item.get("Input") is not None:
            event.eventSent.input.value = item["Input"]
    elif kind == h.EVENT_SENT and item.get("LockSet") is not None:
        requested = event.entityLockRequested
        requested.criticalSectionId = str(item.get("RequestId"))
        requested.lockSet.extend(str(e) for e in item["LockSet"])
        requested.parentInstanceId.value = record.instance_id
    elif kind == h.EVENT_SENT and item.get("Unlock"):
        unlocked = event.entityUnlockSent
        unlocked.criticalSectionId = str(item["Unlock"])
        unlocked.parentInstanceId.value = record.instance_id
        unlocked.targetInstanceId.value = str(item.get("InstanceId"))
    elif kind == h.EVENT_RAISED and sections and item.get("Name") in sections:
        event.entityLockGranted.criticalSectionId = str(item.get("Name"))
    elif kind == h.EVENT_SENT and (item.get("RequestId") or item.get("SignalId")):
        # An entity call or signal; its answer comes back as the EventRaised the worker maps by the
        # request id (the entity protocol the Functions extension speaks, which the worker reads).
        message = h.json_or_text(item.get("Input"))
        input_text = message.get("input") if isinstance(message, dict) else None
        if item.get("RequestId"):
            called = event.entityOperationCalled
            called.requestId = str(item["RequestId"])
            called.parentInstanceId.value = record.instance_id
        else:
            called = event.entityOperationSignaled
            called.requestId = str(item["SignalId"])
        called.operation = str(item.get("Name"))
        called.targetInstanceId.value = str(item.get("InstanceId"))
        if input_text is not None:
            called.input.value = input_text
    elif kind == h.EVENT_RAISED:
        event.eventRaised.name = str(item.get("Name"))
        if item.get("Input") is not None:
            event.eventRaised.input.value = item["Input"]
    else:
        return None
    return event


def to_events(items: list[dict[str, Any]], record: InstanceRecord) -> list[pb.HistoryEvent]:
    """Stored history events as the worker reads them (the host's own marks left out)."""
    ids = worker_ids(record.history)
    sections = {str(e["RequestId"]) for e in record.history if e.get("LockSet") is not None}
    converted = (to_event(item, record, ids, sections) for item in items)
    return [event for event in converted if event is not None]


def request(record: InstanceRecord, events: list[dict[str, Any]]) -> pb.OrchestratorRequest:
    """The work item of one episode: the committed history, then this episode's new events."""
    return pb.OrchestratorRequest(
        instanceId=record.instance_id,
        executionId=text(record.execution_id),
        pastEvents=to_events(record.history, record),
        newEvents=to_events(events, record),
    )


def decision(
    record: InstanceRecord, events: list[dict[str, Any]], now: datetime, response: pb.OrchestratorResponse
) -> Decision:
    """The engine's decision from a worker's answer to the episode whose new events were `events`
    (those begin with the episode's OrchestratorStarted)."""
    new_events = list(events)
    result = Decision(status="Running", events=new_events, actions_seen=record.actions_seen)
    done = h.completed_ids(record.history) | h.completed_ids(events)
    retries = RETRY_IDS + len(worker_ids(record.history))
    if response.HasField("customStatus"):
        result.custom_status = (True, h.json_or_text(response.customStatus.value))
    for action in response.actions:
        kind = action.WhichOneof("orchestratorActionType")
        task_id = int(action.id)
        again: dict[str, Any] = {}
        if task_id in done and kind in ("scheduleTask", "createSubOrchestration"):  # a retry
            again, task_id, retries = {"WorkerId": task_id}, retries, retries + 1
        if kind == "scheduleTask":
            name, input_text = action.scheduleTask.name, optional(action.scheduleTask, "input")
            result.work.append(Work("activity", task_id, name, input_text))
            new_events.append(h.event(h.TASK_SCHEDULED, now, task_id, Name=name, Input=input_text, **again))
        elif kind == "createTimer":
            fire_at = from_stamp(action.createTimer.fireAt)
            result.work.append(Work("timer", task_id, fire_at=fire_at))
            new_events.append(h.event(h.TIMER_CREATED, now, task_id, FireAt=h.iso(fire_at)))
        elif kind == "createSubOrchestration":
            sub = action.createSubOrchestration
            child = sub.instanceId or f"{record.execution_id}:{task_id}"
            input_text = optional(sub, "input")
            result.work.append(Work("sub", task_id, sub.name, input_text, target=child))
            new_events.append(
                h.event(
                    h.SUB_CREATED, now, task_id, Name=sub.name, Input=input_text, InstanceId=child, **again
                )
            )
        elif kind == "sendEntityMessage" and action.sendEntityMessage.WhichOneof("EntityMessageType") in (
            "entityOperationCalled",
            "entityOperationSignaled",
        ):
            new_events.append(_entity_message(record, action.sendEntityMessage, task_id, now, result))
        elif kind == "sendEntityMessage" and action.sendEntityMessage.HasField("entityLockRequested"):
            lock = action.sendEntityMessage.entityLockRequested
            new_events.append(_lock(record, lock, task_id, now, result))
        elif kind == "sendEntityMessage" and action.sendEntityMessage.HasField("entityUnlockSent"):
            unlock = action.sendEntityMessage.entityUnlockSent
            new_events.append(_unlock(record, unlock, task_id, now, result))
        elif kind == "sendEvent":
            sent = action.sendEvent
            target, data = sent.instance.instanceId, optional(sent, "data")
            result.work.append(Work("event", task_id, sent.name, data, target=target))
            new_events.append(
                h.event(h.EVENT_SENT, now, task_id, Name=sent.name, InstanceId=target, Input=data, Event=True)
            )
        elif kind == "terminateOrchestration" and task_id in _terminates(record.history):
            continue  # no history event shows it to the worker, which may ask again: sent once
        elif kind == "terminateOrchestration":
            ended = action.terminateOrchestration
            reason = optional(ended, "reason")
            recurse = "recursive" if ended.recurse else ""
            result.work.append(Work("terminate", task_id, recurse, reason, target=ended.instanceId))
            new_events.append(
                h.event(
                    h.EVENT_SENT, now, task_id, Name="terminate", InstanceId=ended.instanceId, Terminate=True
                )
            )
        elif kind == "completeOrchestration":
            _complete(result, action.completeOrchestration, now)
        else:
            result.status = "Failed"
            result.output = f"the sidecar does not support the {kind} action yet"
            break
    if result.status != "Running":  # signals (and unlocks), events and terminates still go out
        result.work = [w for w in result.work if w.kind in ("signal", "event", "terminate")]
    new_events.append(h.event(h.ORCHESTRATOR_COMPLETED, now))
    return result


def _entity_message(
    record: InstanceRecord, message: pb.SendEntityMessageAction, task_id: int, now: datetime, result: Decision
) -> dict[str, Any]:
    """An entity call or signal: the EventSent the engine's entity dispatch reads, and its work."""
    call = message.HasField("entityOperationCalled")
    sent = message.entityOperationCalled if call else message.entityOperationSignaled
    due = from_stamp(sent.scheduledTime) if not call and sent.HasField("scheduledTime") else None
    fields = {"ScheduledTime": h.iso(due)} if due is not None else {}
    return _sent_to_entity(
        record, result, task_id, now, call, sent.operation, optional(sent, "input"),
        sent.targetInstanceId.value, sent.requestId, due, **fields,
    )  # fmt: skip


def _sent_to_entity(
    record: InstanceRecord,
    result: Decision,
    task_id: int,
    now: datetime,
    call: bool,
    operation: str,
    input_text: str | None,
    target: str,
    request_id: str,
    fire_at: datetime | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """A call (answered under `request_id`) or a signal to entity `target`: its work, and the
    EventSent the engine's entity dispatch reads (`fields`: what else the history keeps of it)."""
    body: dict[str, Any] = {
        "op": operation,
        "id": request_id,
        "parent": record.instance_id,
        "input": input_text,
    }
    if not call:
        body["signal"] = True
    kind = "call" if call else "signal"
    result.work.append(
        Work(kind, task_id, operation, input_text, target=target, request_id=request_id, fire_at=fire_at)
    )
    ids = {"RequestId": request_id} if call else {"SignalId": request_id}
    return h.event(
        h.EVENT_SENT, now, task_id, Name=operation, InstanceId=target, Input=json.dumps(body), **ids, **fields
    )


def _terminates(history: list[dict[str, Any]]) -> set[int]:
    """Task ids of the terminateOrchestration actions a history recorded."""
    return {int(e["EventId"]) for e in history if e["EventType"] == h.EVENT_SENT and e.get("Terminate")}


def _lock(
    record: InstanceRecord,
    request: pb.EntityLockRequestedEvent,
    task_id: int,
    now: datetime,
    result: Decision,
) -> dict[str, Any]:
    """A critical section's lock request: a call to the first entity of the set (`entities/locks.py`),
    answered (the grant) once every entity of the set is locked; the history keeps the set."""
    section, lock_set = request.criticalSectionId, list(request.lockSet)
    target = lock_set[0] if lock_set else ""
    input_text = locks.lock_request(section, lock_set)
    return _sent_to_entity(
        record,
        result,
        task_id,
        now,
        True,
        locks.LOCK_OPERATION,
        input_text,
        target,
        section,
        LockSet=lock_set,
    )


def _unlock(
    record: InstanceRecord, unlock: pb.EntityUnlockSentEvent, task_id: int, now: datetime, result: Decision
) -> dict[str, Any]:
    """A critical section's unlock of one entity: a signal the entity acknowledges (an instance that
    ends waits for that, so its locks are released even when it ends right after)."""
    section, target = unlock.criticalSectionId, unlock.targetInstanceId.value
    rid = f"unlock:{section}:{target}"
    input_text = locks.unlock_request(section)
    return _sent_to_entity(
        record, result, task_id, now, False, locks.UNLOCK_OPERATION, input_text, target, rid, Unlock=section
    )


def _complete(result: Decision, done: pb.CompleteOrchestrationAction, now: datetime) -> None:
    status = STATUS_NAMES.get(done.orchestrationStatus, "Failed")
    value = optional(done, "result")
    if status == "ContinuedAsNew":
        result.status = status
        result.continue_input = value
        result.carryover = [
            h.event(h.EVENT_RAISED, now, Name=e.eventRaised.name, Input=optional(e.eventRaised, "input"))
            for e in done.carryoverEvents
            if e.HasField("eventRaised")
        ]
    elif status == "Failed":
        result.status = status
        details = done.failureDetails
        result.output = (
            f"{details.errorType}: {details.errorMessage}" if details.errorType else details.errorMessage
        )
    else:
        result.status = "Completed"
        result.output = None if value is None else h.json_or_text(value)


def state(record: InstanceRecord, with_payloads: bool) -> pb.OrchestrationState:
    """An instance as the client reads it."""
    result = pb.OrchestrationState(
        instanceId=record.instance_id,
        name=record.name,
        orchestrationStatus=STATUSES.get(record.status, pb.ORCHESTRATION_STATUS_RUNNING),
        createdTimestamp=stamp(record.created),
        lastUpdatedTimestamp=stamp(record.updated or record.created),
        executionId=text(record.execution_id),
        parentInstanceId=text(record.parent),
    )
    if record.terminal:
        result.completedTimestamp.CopyFrom(stamp(record.updated or record.created))
    if record.scheduled_start is not None:
        result.scheduledStartTimestamp.CopyFrom(stamp(record.scheduled_start))
    if record.status == "Failed":
        message = h.json_or_text(record.output)
        message = message if isinstance(message, str) else json.dumps(message)
        # The engine words an orchestrator's failure as "Orchestrator function 'X' failed: <reason>".
        result.failureDetails.CopyFrom(failure(None, _ENGINE_FAILURE.sub("", message, count=1)))
    if with_payloads:
        if record.input is not None:
            result.input.value = record.input
        if record.output is not None and record.status in ("Completed", "Terminated"):
            result.output.value = record.output
        if record.custom_status is not None:
            result.customStatus.value = record.custom_status
    return result
