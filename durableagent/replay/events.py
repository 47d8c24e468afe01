"""Orchestration history events: the DTFx JSON the SDK's orchestrator handler replays.

Shared by the local host (which keeps and serves histories: `harness/host/orchestrations/`) and the
offline replay check (`durableagent.replay`), so both read and write events one way. The host keeps one
execution's history as the list of events the Durable extension would hand the SDK (PascalCase keys,
integer `EventType`, UTC timestamps ending in `Z`), in DTFx's episode layout: `OrchestratorStarted, <new
events>, <events for the actions taken>, OrchestratorCompleted`. Host-only keys on events (`FunctionName`
on completions, `RequestId`/`Target` on `EventSent`, `RetryOf` on retry attempts) ride along: the SDK
ignores keys it does not read.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from azure.durable_functions.models.actions import ActionType
from azure.durable_functions.models.history import HistoryEventType

# DTFx EventType numbers: the SDK's own enum (an IntEnum, so stored JSON holds the integers the SDK
# accepts), under the short names the host uses.
EXECUTION_STARTED = HistoryEventType.EXECUTION_STARTED
EXECUTION_COMPLETED = HistoryEventType.EXECUTION_COMPLETED
EXECUTION_FAILED = HistoryEventType.EXECUTION_FAILED
EXECUTION_TERMINATED = HistoryEventType.EXECUTION_TERMINATED
TASK_SCHEDULED = HistoryEventType.TASK_SCHEDULED
TASK_COMPLETED = HistoryEventType.TASK_COMPLETED
TASK_FAILED = HistoryEventType.TASK_FAILED
SUB_CREATED = HistoryEventType.SUB_ORCHESTRATION_INSTANCE_CREATED
SUB_COMPLETED = HistoryEventType.SUB_ORCHESTRATION_INSTANCE_COMPLETED
SUB_FAILED = HistoryEventType.SUB_ORCHESTRATION_INSTANCE_FAILED
TIMER_CREATED = HistoryEventType.TIMER_CREATED
TIMER_FIRED = HistoryEventType.TIMER_FIRED
ORCHESTRATOR_STARTED = HistoryEventType.ORCHESTRATOR_STARTED
ORCHESTRATOR_COMPLETED = HistoryEventType.ORCHESTRATOR_COMPLETED
EVENT_SENT = HistoryEventType.EVENT_SENT
EVENT_RAISED = HistoryEventType.EVENT_RAISED
CONTINUE_AS_NEW = HistoryEventType.CONTINUE_AS_NEW
# The host's own marks (signal acknowledgements); the SDK skips them.
GENERIC_EVENT = HistoryEventType.GENERIC_EVENT
EXECUTION_SUSPENDED = HistoryEventType.EXECUTION_SUSPENDED
EXECUTION_RESUMED = HistoryEventType.EXECUTION_RESUMED

# The names the instance API shows (`SUB_ORCHESTRATION_INSTANCE_CREATED` ->
# `SubOrchestrationInstanceCreated`); the host's own marks and the SDK's HistoryState are not shown.
NAMES = {
    kind: "".join(word.capitalize() for word in kind.name.split("_"))
    for kind in HistoryEventType
    if kind not in (GENERIC_EVENT, HistoryEventType.HISTORY_STATE)
}

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
            if action.get("actionType") in (ActionType.WHEN_ANY, ActionType.WHEN_ALL):
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
