"""Orchestration history events as the local host's instance API shows them (`public_history`).

The events themselves (the DTFx JSON the SDK replays: kinds, `event`, times, `flatten`, ...) live in
`durableagent.replay.events`, shared with the offline replay check; they are re-exported here under
the names the host's modules use (`from . import history as h`).
"""

from __future__ import annotations

from typing import Any

from durableagent.replay.events import (
    COMPLETION_KEYS,
    CONTINUE_AS_NEW,
    EVENT_RAISED,
    EVENT_SENT,
    EXECUTION_COMPLETED,
    EXECUTION_FAILED,
    EXECUTION_RESUMED,
    EXECUTION_STARTED,
    EXECUTION_SUSPENDED,
    EXECUTION_TERMINATED,
    GENERIC_EVENT,
    NAMES,
    ORCHESTRATOR_COMPLETED,
    ORCHESTRATOR_STARTED,
    SUB_COMPLETED,
    SUB_CREATED,
    SUB_FAILED,
    TASK_COMPLETED,
    TASK_FAILED,
    TASK_SCHEDULED,
    TIMER_CREATED,
    TIMER_FIRED,
    completed_ids,
    event,
    flatten,
    iso,
    json_or_text,
    parse_time,
    raised_names,
)

__all__ = [
    "COMPLETION_KEYS",
    "CONTINUE_AS_NEW",
    "EVENT_RAISED",
    "EVENT_SENT",
    "EXECUTION_COMPLETED",
    "EXECUTION_FAILED",
    "EXECUTION_RESUMED",
    "EXECUTION_STARTED",
    "EXECUTION_SUSPENDED",
    "EXECUTION_TERMINATED",
    "GENERIC_EVENT",
    "NAMES",
    "ORCHESTRATOR_COMPLETED",
    "ORCHESTRATOR_STARTED",
    "SUB_COMPLETED",
    "SUB_CREATED",
    "SUB_FAILED",
    "TASK_COMPLETED",
    "TASK_FAILED",
    "TASK_SCHEDULED",
    "TIMER_CREATED",
    "TIMER_FIRED",
    "completed_ids",
    "event",
    "flatten",
    "iso",
    "json_or_text",
    "parse_time",
    "public_history",
    "raised_names",
]


def public_history(
    history: list[dict[str, Any]], with_output: bool, with_input: bool = False
) -> list[dict[str, Any]]:
    """The condensed history the instance API shows, as the real extension condenses it.

    Orchestrator episode markers are dropped; a completion carries the name and scheduled time of what
    it completes (and with `with_input`, `showInput`, its input, as the current extension does, so a
    replay check can compare inputs); entity calls and signals show as `EntityCalled` /
    `EntitySignaled` (a local host extension: the real one shows the EventSent/EventRaised pair).
    An activity or sub-orchestration not completed yet shows as its `TaskScheduled` /
    `SubOrchestrationInstanceCreated` event where it was scheduled, as the extension shows it.
    """
    scheduled: dict[int, dict[str, Any]] = {}
    calls: dict[str, dict[str, Any]] = {}
    shown: list[dict[str, Any]] = []
    done = completed_ids(history)
    for item in history:
        kind = item["EventType"]
        at = item.get("Timestamp")
        if kind in (ORCHESTRATOR_STARTED, ORCHESTRATOR_COMPLETED):
            continue
        if kind in (TASK_SCHEDULED, SUB_CREATED, TIMER_CREATED):
            scheduled[int(item["EventId"])] = item
        if kind in (TASK_SCHEDULED, SUB_CREATED) and int(item["EventId"]) not in done:
            entry = {"EventType": NAMES[kind], "Timestamp": at, "Name": item.get("Name")}
            if kind == SUB_CREATED:
                entry["InstanceId"] = item.get("InstanceId")
            if with_input:
                entry["Input"] = json_or_text(item.get("Input"))
            shown.append(entry)
        elif kind == EXECUTION_STARTED:
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
            if with_input and "Input" in origin:
                entry["Input"] = json_or_text(origin.get("Input"))
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
        elif kind == EVENT_SENT and (item.get("Event") or item.get("Terminate")):  # to an instance
            entry = {"EventType": "EventSent", "Timestamp": at, "InstanceId": item.get("InstanceId")}
            entry["Name"] = item.get("Name")
            if with_input and item.get("Event"):
                entry["Input"] = json_or_text(item.get("Input"))
            shown.append(entry)
        elif kind == EVENT_SENT:
            entry = {
                "EventType": "EntityCalled" if item.get("RequestId") else "EntitySignaled",
                "Timestamp": at,
                "InstanceId": item.get("InstanceId"),
                "Operation": item.get("Name"),
                "ScheduledTime": at,
            }
            message = json_or_text(item.get("Input"))
            if with_input and isinstance(message, dict) and "input" in message:
                entry["Input"] = json_or_text(message["input"])
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
