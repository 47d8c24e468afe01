"""Orchestration history events: the DTFx JSON the SDK replays, and the view the instance API shows.

The host keeps one execution's history as the list of events the Durable extension would hand the
SDK (PascalCase keys, integer `EventType`, UTC timestamps ending in `Z`), in DTFx's episode layout:
`OrchestratorStarted, <new events>, <events for the actions taken>, OrchestratorCompleted`. Host-only
keys on events (`FunctionName` on completions, `RequestId`/`Target` on `EventSent`, `RetryOf` on retry
attempts) ride along: the SDK ignores keys it does not read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

# DTFx EventType numbers (the SDK accepts only integers).
EXECUTION_STARTED = 0
EXECUTION_COMPLETED = 1
EXECUTION_FAILED = 2
EXECUTION_TERMINATED = 3
TASK_SCHEDULED = 4
TASK_COMPLETED = 5
TASK_FAILED = 6
SUB_CREATED = 7
SUB_COMPLETED = 8
SUB_FAILED = 9
TIMER_CREATED = 10
TIMER_FIRED = 11
ORCHESTRATOR_STARTED = 12
ORCHESTRATOR_COMPLETED = 13
EVENT_SENT = 14
EVENT_RAISED = 15
CONTINUE_AS_NEW = 16
GENERIC_EVENT = 17  # the host's own marks (signal acknowledgements); the SDK skips them
EXECUTION_SUSPENDED = 19
EXECUTION_RESUMED = 20

NAMES = {
    EXECUTION_STARTED: "ExecutionStarted",
    EXECUTION_COMPLETED: "ExecutionCompleted",
    EXECUTION_FAILED: "ExecutionFailed",
    EXECUTION_TERMINATED: "ExecutionTerminated",
    TASK_SCHEDULED: "TaskScheduled",
    TASK_COMPLETED: "TaskCompleted",
    TASK_FAILED: "TaskFailed",
    SUB_CREATED: "SubOrchestrationInstanceCreated",
    SUB_COMPLETED: "SubOrchestrationInstanceCompleted",
    SUB_FAILED: "SubOrchestrationInstanceFailed",
    TIMER_CREATED: "TimerCreated",
    TIMER_FIRED: "TimerFired",
    ORCHESTRATOR_STARTED: "OrchestratorStarted",
    ORCHESTRATOR_COMPLETED: "OrchestratorCompleted",
    EVENT_SENT: "EventSent",
    EVENT_RAISED: "EventRaised",
    CONTINUE_AS_NEW: "ContinueAsNew",
    EXECUTION_SUSPENDED: "ExecutionSuspended",
    EXECUTION_RESUMED: "ExecutionResumed",
}

# Action types of the SDK's orchestrator state (orchestration-protocol.md section 5).
CALL_ACTIVITY = 0
CALL_ACTIVITY_RETRY = 1
CALL_SUB = 2
CALL_SUB_RETRY = 3
CONTINUE_AS_NEW_ACTION = 4
CREATE_TIMER = 5
WAIT_EVENT = 6
CALL_ENTITY = 7
CALL_HTTP = 8
SIGNAL_ENTITY = 9
WHEN_ANY = 11
WHEN_ALL = 12

# Completions: the key that names the task they finish.
COMPLETION_KEYS = {
    TASK_COMPLETED: "TaskScheduledId",
    TASK_FAILED: "TaskScheduledId",
    SUB_COMPLETED: "TaskScheduledId",
    SUB_FAILED: "TaskScheduledId",
    TIMER_FIRED: "TimerId",
}


def iso(stamp: datetime) -> str:
    """A UTC timestamp as the SDK and the API expect it (7 fraction digits are fine, 6 suffice)."""
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(text: str) -> datetime:
    """Parse an ISO timestamp from history or a query; naive times are taken as UTC."""
    value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def event(kind: int, at: datetime, event_id: int = -1, **fields: Any) -> dict[str, Any]:
    """One history event with the keys every event needs."""
    return {"EventType": kind, "EventId": event_id, "IsPlayed": False, "Timestamp": iso(at), **fields}


def flatten(actions: list[Any]) -> list[dict[str, Any]]:
    """The SDK's nested action list, depth first (compound actions replaced by their children)."""
    flat: list[dict[str, Any]] = []

    def walk(action: Any) -> None:
        if isinstance(action, list):
            for child in action:
                walk(child)
        elif isinstance(action, dict):
            if action.get("actionType") in (WHEN_ANY, WHEN_ALL):
                walk(action.get("compoundActions") or [])
            else:
                flat.append(action)

    walk(actions)
    return flat


def completed_ids(history: list[dict[str, Any]]) -> set[int]:
    """Task ids whose completion (or timer fire) is already in the history."""
    done: set[int] = set()
    for item in history:
        key = COMPLETION_KEYS.get(item["EventType"])
        if key is not None:
            done.add(int(item[key]))
    return done


def raised_names(history: list[dict[str, Any]]) -> list[str]:
    """Names of the EventRaised events in the history (external events and entity responses)."""
    return [item.get("Name", "") for item in history if item["EventType"] == EVENT_RAISED]


def json_or_text(text: Any) -> Any:
    """The value JSON text holds; text that is not JSON (or not text) as it is."""
    if not isinstance(text, str):
        return text
    try:
        return json.loads(text)
    except ValueError:
        return text


def public_history(history: list[dict[str, Any]], with_output: bool) -> list[dict[str, Any]]:
    """The condensed history the instance API shows, as the real extension condenses it.

    Orchestrator episode markers are dropped; a completion carries the name and scheduled time of what
    it completes; entity calls and signals show as `EntityCalled` / `EntitySignaled` (a local host
    extension: the real one shows the EventSent/EventRaised pair).
    """
    scheduled: dict[int, dict[str, Any]] = {}
    calls: dict[str, dict[str, Any]] = {}
    shown: list[dict[str, Any]] = []
    for item in history:
        kind = item["EventType"]
        at = item.get("Timestamp")
        if kind in (ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED):
            continue
        if kind in (TASK_SCHEDULED, SUB_CREATED, TIMER_CREATED):
            scheduled[int(item["EventId"])] = item
        if kind == EXECUTION_STARTED:
            entry = {"EventType": "ExecutionStarted", "Timestamp": at, "FunctionName": item.get("Name")}
            if with_output:
                entry["Input"] = json_or_text(item.get("Input"))
            shown.append(entry)
        elif kind in (TASK_COMPLETED, TASK_FAILED, SUB_COMPLETED, SUB_FAILED):
            origin = scheduled.get(int(item["TaskScheduledId"]), {})
            entry = {
                "EventType": NAMES[kind],
                "Timestamp": at,
                "FunctionName": origin.get("Name"),
                "ScheduledTime": origin.get("Timestamp"),
            }
            if kind in (SUB_COMPLETED, SUB_FAILED):
                entry["InstanceId"] = origin.get("InstanceId")
            if kind in (TASK_COMPLETED, SUB_COMPLETED):
                if with_output:
                    entry["Result"] = json_or_text(item.get("Result"))
            else:
                entry["Reason"] = item.get("Reason")
                if with_output:
                    entry["Details"] = item.get("Details")
            shown.append(entry)
        elif kind == TIMER_CREATED:
            if "RetryOf" not in item:
                shown.append({"EventType": "TimerCreated", "Timestamp": at, "FireAt": item.get("FireAt")})
        elif kind == TIMER_FIRED:
            origin = scheduled.get(int(item["TimerId"]), {})
            if "RetryOf" not in origin:
                shown.append({"EventType": "TimerFired", "Timestamp": at, "FireAt": item.get("FireAt")})
        elif kind == EVENT_SENT:
            entry = {
                "EventType": "EntityCalled" if item.get("RequestId") else "EntitySignaled",
                "Timestamp": at,
                "InstanceId": item.get("InstanceId"),
                "Operation": item.get("Name"),
                "ScheduledTime": at,
            }
            if item.get("RequestId"):
                calls[item["RequestId"]] = entry
            shown.append(entry)
        elif kind == EVENT_RAISED:
            call = calls.get(item.get("Name", ""))
            if call is not None:  # an entity's answer completes the call shown above
                answer = json_or_text(item.get("Input")) or {}
                call["Timestamp"] = at
                value = json_or_text(answer.get("result")) if isinstance(answer, dict) else answer
                if isinstance(answer, dict) and "exceptionType" in answer:
                    call["Error"] = value
                elif with_output:
                    call["Result"] = value
                continue
            entry = {"EventType": "EventRaised", "Timestamp": at, "Name": item.get("Name")}
            if with_output:
                entry["Input"] = json_or_text(item.get("Input"))
            shown.append(entry)
        elif kind in (EXECUTION_COMPLETED, EXECUTION_FAILED):
            entry = {
                "EventType": "ExecutionCompleted",
                "Timestamp": at,
                "OrchestrationStatus": item.get("OrchestrationStatus"),
            }
            if with_output:
                entry["Result"] = json_or_text(item.get("Result"))
            shown.append(entry)
        elif kind in (CONTINUE_AS_NEW, EXECUTION_SUSPENDED, EXECUTION_RESUMED, EXECUTION_TERMINATED):
            entry = {"EventType": NAMES[kind], "Timestamp": at}
            if item.get("Reason"):
                entry["Reason"] = item["Reason"]
            if with_output and kind == CONTINUE_AS_NEW:
                entry["Input"] = json_or_text(item.get("Input"))
            shown.append(entry)
    return shown
