"""Recovery: what an unfinished instance gets back after a restart (or after a commit whose answer
was lost), read from its history alone.

An episode commits before it starts what it scheduled, so after a crash the history may show work
scheduled and never completed: activities run again (at-least-once, as on Azure), timers are
armed again (fired at once when due), children are created when missing, and entity calls and
signals with no answer or acknowledgement are sent again under the row key the history recorded
(a row that exists is not written twice, and an entity answers before it commits, so each entity
operation is applied exactly once). The engine starts each item with `again=True`.
"""

from __future__ import annotations

import json

from . import history as h
from .inbox import acknowledged
from .replay import Work
from .store import InstanceRecord, Message


def unfinished_work(record: InstanceRecord, inbox: list[Message]) -> list[tuple[Work, str | None]]:
    """What the history scheduled and nothing completed (neither the history nor the inbox), with
    the signal row key an entity operation was sent under: the work to start again."""
    found: list[tuple[Work, str | None]] = []
    history = record.history
    done = h.completed_ids(history)
    for message in inbox:
        key = h.COMPLETION_KEYS.get(message.event.get("EventType", -1))
        if key is not None:
            done.add(int(message.event[key]))
    answered = set(h.raised_names(history)) | acknowledged(history)
    answered |= {str(m.event.get("Name")) for m in inbox if m.event.get("EventType") == h.EVENT_RAISED}
    for item in history:
        kind = item["EventType"]
        task_id = int(item.get("EventId", -1))
        if kind == h.TASK_SCHEDULED and task_id not in done:
            work_kind = "activity" if item.get("Name") != "BuiltIn::HttpActivity" else "http"
            work = Work(work_kind, task_id, str(item.get("Name")), item.get("Input"))
            if work_kind == "http":
                work.name = "call_http"
            found.append((work, None))
        elif kind == h.TIMER_CREATED and task_id not in done and not item.get("IsCanceled"):
            work = Work("timer", task_id, fire_at=h.parse_time(item["FireAt"]))
            found.append((work, None))
        elif kind == h.SUB_CREATED and task_id not in done:
            work = Work("sub", task_id, str(item.get("Name")), item.get("Input"), target=item["InstanceId"])
            found.append((work, None))
        elif kind == h.EVENT_SENT:
            request = item.get("RequestId")
            signal = item.get("SignalId")
            if (request and request not in answered) or (signal and signal not in answered):
                message = json.loads(item.get("Input") or "{}")
                work = Work(
                    "call" if request else "signal",
                    task_id,
                    str(item.get("Name")),
                    message.get("input"),
                    target=str(item.get("InstanceId")),
                    request_id=str(message.get("id") or ""),
                    fire_at=h.parse_time(item["ScheduledTime"]) if item.get("ScheduledTime") else None,
                )
                found.append((work, item.get("SignalKey")))
    return found
