"""What one episode takes from an instance's inbox: pure (the instance row and the inbox in, the
batch out), so the rules can be read, and tested, apart from storage and the SDK.

An episode takes the inbox in arrival order up to `MAX_EPISODE_EVENTS` events, ending early after a
retry-related event (a failed retry attempt or a fired retry timer takes a hidden task id); drops
events for another execution and completions already in the history; records an entity's
acknowledgement of a signal as a `GenericEvent` (the SDK never sees it); and holds external events
until a wait for their name is open (the SDK would hand an early event to every later wait of that
name). Terminate, suspend and resume (`CONTROL`) are taken by the engine before the batch.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from . import history as h
from .replay import is_retry_event
from .store import InstanceRecord, Message

MAX_EPISODE_EVENTS = 100  # new events handed to one episode
CONTROL = (h.EXECUTION_TERMINATED, h.EXECUTION_SUSPENDED, h.EXECUTION_RESUMED)


class Batch(NamedTuple):
    """One episode's share of the inbox, each item with the event to record for it."""

    events: list[tuple[Message, dict[str, Any]]]  # handed to the SDK
    acks: list[tuple[Message, dict[str, Any]]]  # signal acknowledgements, recorded only
    dropped: list[str]  # row keys of stale or duplicate messages
    held: list[tuple[Message, dict[str, Any]]]  # external events tried after the others


def take_batch(
    record: InstanceRecord, inbox: list[Message], now: datetime, hold_events: bool = True
) -> Batch:
    """The events this episode hands the SDK, the signal acknowledgements it records, the
    messages to drop (stale or duplicate), and the external events it may try after the others.

    External events wait in the inbox until a wait for their name is open. Those beyond the open
    waits of a name that has one are `held`: the episode tries them after the rest, in arrival
    order, and takes them only if each found its wait open (a loop of waits opens the next one as
    the previous one is answered), so the inbox of a waiting instance goes in a few episodes.
    `hold_events=False` (code that buffers early events itself): every external event is taken.
    """
    done = h.completed_ids(record.history)
    scheduled = {int(e["EventId"]) for e in record.history if e["EventType"] in _SCHEDULING}
    canceled = {int(e["EventId"]) for e in record.history if e.get("IsCanceled")}
    requests = {
        e["RequestId"] for e in record.history if e["EventType"] == h.EVENT_SENT and e.get("RequestId")
    }
    signals = {e["SignalId"] for e in record.history if e["EventType"] == h.EVENT_SENT and e.get("SignalId")}
    answered = set(h.raised_names(record.history)) | acknowledged(record.history)
    sources = {e["SourceKey"] for e in record.history if e.get("SourceKey")}  # events sent by instances
    waits = dict(record.waits)
    for name in h.raised_names(record.history):
        if name in waits:
            waits[name] -= 1
    waiting = {name for name, count in waits.items() if count > 0}  # names with a wait open now
    batch: list[tuple[Message, dict]] = []
    acks: list[tuple[Message, dict]] = []
    dropped: list[str] = []
    held: list[tuple[Message, dict]] = []
    seen = list(record.history)
    ended_early = False
    for message in inbox:
        event = message.event
        kind = event.get("EventType")
        if message.execution and message.execution != record.execution_id:
            dropped.append(message.row_key)
            continue
        if kind in h.COMPLETION_KEYS:
            task_id = int(event[h.COMPLETION_KEYS[kind]])
            if task_id in done or task_id not in scheduled or task_id in canceled:
                dropped.append(message.row_key)
                continue
            done.add(task_id)
        elif kind == h.EVENT_RAISED:
            name = str(event.get("Name"))
            if event.get("SourceKey"):  # sent by an instance's episode: a copy sent again is dropped
                if event["SourceKey"] in sources:
                    dropped.append(message.row_key)
                    continue
                sources.add(event["SourceKey"])
            if name in signals:  # an entity acknowledges a signal: noted, not handed to the SDK
                if name not in answered:
                    answered.add(name)
                    acks.append(
                        (
                            message,
                            h.event(h.GENERIC_EVENT, event_time(event, now), Name="ack", RequestId=name),
                        )
                    )
                else:
                    dropped.append(message.row_key)
                continue
            if name in requests:  # an entity's answer
                if name in answered:
                    dropped.append(message.row_key)
                    continue
                answered.add(name)
            elif waits.get(name, 0) > 0:
                waits[name] -= 1
            elif not hold_events:
                pass
            else:
                if name in waiting:
                    held.append((message, event))
                continue  # held until a wait for it opens
        batch.append((message, event))
        seen.append(event)
        if len(batch) >= MAX_EPISODE_EVENTS or is_retry_event(seen, event):
            ended_early = True  # full, or a retry event, which must end the batch
            break
    held = [] if ended_early else held[: MAX_EPISODE_EVENTS - len(batch)]
    return Batch(batch, acks, dropped, held)


_SCHEDULING = (h.TASK_SCHEDULED, h.TIMER_CREATED, h.SUB_CREATED)


def acknowledged(history: list[dict[str, Any]]) -> set[str]:
    """Request ids of signals whose entity acknowledged them."""
    return {
        str(e.get("RequestId"))
        for e in history
        if e["EventType"] == h.GENERIC_EVENT and e.get("Name") == "ack"
    }


def event_time(event: dict[str, Any], now: datetime) -> datetime:
    """When an inbox event was written (its Timestamp; `now` for one without)."""
    return h.parse_time(str(event.get("Timestamp"))) if event.get("Timestamp") else now
