"""What an orchestration history recorded, read from the files people actually have.

Two shapes reach the replay check, and both become one neutral `RecordedRun`: what the orchestrator
scheduled (`Scheduled`, in the order it scheduled them) and what happened to it (`Incoming`, in
history order), plus how it ended.

- The **served** shape: `historyEvents` of the Durable HTTP API's status
  (`GET .../instances/{id}?showHistory=true&showHistoryOutput=true&showInput=true`), on Azure or on
  the local host. The extension condenses it: episode markers (`OrchestratorStarted/Completed`) are
  dropped, a completion carries the name and `ScheduledTime` of what it completes (the scheduling
  event is dropped), task ids are gone, `EventType` is a name. So the order in which things were
  scheduled is rebuilt from those times (equal times: one episode, matched as a set), completions
  point at the scheduled item they carry, and the clock is approximate on Azure (its scheduling
  events are stamped a few milliseconds after the episode started).
- The **raw** shape: the DTFx events the SDK is handed (integer `EventType`, `EventId`,
  `TaskScheduledId`, `OrchestratorStarted` per episode), as the local host stores them and
  `python -m harness export` writes them: exact ids, episode boundaries and episode times.

Files are bounded (`MAX_FILE_BYTES`, `MAX_EVENTS`); anything that is no history is a `BadHistory`
naming the file and what is wrong, never a traceback.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from . import events as h

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_EVENTS = 200_000
EXPORT_FORMAT = "durableagent-export"


class BadHistory(Exception):
    """A file (or an item of it) that is no orchestration history: one line saying why."""


class _Unknown:
    """A value the history did not record (the served shape drops activity inputs unless asked)."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Any = _Unknown()


@dataclass
class Scheduled:
    """One thing the orchestrator scheduled: an activity, a sub-orchestration, a timer, an entity
    call or signal. `retry_step` marks what a retry schedules on its own (a retry timer, a later
    attempt): the code's action is the first attempt only."""

    index: int  # the event's index in the file's history (-1: produced by the code)
    kind: str  # activity | sub | timer | call | signal
    name: str = ""  # the activity or orchestrator name, the entity operation
    input: Any = UNKNOWN  # the decoded input value
    target: str | None = None  # the entity id `@name@key`, or the child instance id
    fire_at: datetime | None = None
    at: datetime | None = None  # when it was scheduled
    retry_step: bool = False
    ref: Any = None  # what completions use to point at it
    request_id: str | None = None  # an entity call's request id (its answer is named by it)

    def describe(self) -> str:
        """One line, as the divergence diff shows it."""
        if self.kind == "timer":
            return f"timer firing at {h.iso(self.fire_at) if self.fire_at else '?'}"
        words = {"activity": "activity", "sub": "sub-orchestrator", "call": "entity call", "signal": "signal"}
        text = f"{words.get(self.kind, self.kind)} {self.name!r}"
        if self.kind in ("call", "signal") and self.target:
            text += f" to {self.target}"
        if self.kind == "sub" and self.target:
            text += f" (instance {self.target})"
        if self.input is not UNKNOWN:
            text += f" input {_short(self.input)}"
        return text


@dataclass
class Incoming:
    """One thing that happened to the orchestrator: a completion, a timer firing, an event."""

    index: int
    kind: str  # completed | failed | fired | raised | answered | terminated
    ref: Any = None  # the `Scheduled.ref` it completes
    name: str = ""  # an external event's name
    text: str | None = None  # JSON text: a result, an event's data, an entity answer
    reason: str | None = None
    details: str | None = None
    at: datetime | None = None  # the episode time (exact in the raw shape)


@dataclass
class RecordedRun:
    """One execution of one instance, as its history recorded it."""

    source: str  # `file` or `file#n`
    instance_id: str
    name: str
    input_text: str | None
    started_at: datetime | None
    start_index: int
    scheduled: list[Scheduled] = field(default_factory=list)
    incoming: list[Incoming] = field(default_factory=list)
    end: tuple[str, Any] | None = None  # (OrchestrationStatus, Result) when it ended
    end_index: int = -1
    parent_instance_id: str | None = None
    exact: bool = False  # the raw shape: ids, episodes and times as recorded


def _short(value: Any, limit: int = 80) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def decoded(value: Any) -> Any:
    """A value as the history holds it (JSON text or a value) as a value."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def json_text(value: Any) -> str | None:
    """JSON text for a field that the served shape gives either as JSON text or as a value."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            json.loads(value)
            return value
        except ValueError:
            return json.dumps(value)
    return json.dumps(value)


def _text_or_none(value: Any) -> str | None:
    return None if value is None else str(value)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        return h.parse_time(value)
    except ValueError:
        return None


# -- files -----------------------------------------------------------------------------------------
def load_runs(path: Path) -> list[RecordedRun]:
    """Every orchestration history in the file at `path` (a status, a list of them, an export)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise BadHistory(f"{path}: cannot read it ({exc.strerror or exc})") from None
    if size > MAX_FILE_BYTES:
        raise BadHistory(f"{path}: {size} bytes, more than the {MAX_FILE_BYTES} a history file may have")
    try:
        data = json.loads(path.read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        raise BadHistory(f"{path}: cannot read it ({exc})") from None
    except RecursionError:
        raise BadHistory(f"{path}: JSON nested too deeply") from None
    except ValueError as exc:
        raise BadHistory(f"{path}: not JSON ({exc})") from None
    return runs_from(data, str(path))


def runs_from(data: Any, source: str) -> list[RecordedRun]:
    """The histories a parsed file holds; `BadHistory` when it holds none or a broken one."""
    if isinstance(data, dict) and data.get("format") == EXPORT_FORMAT:
        items = data.get("instances")
        if not isinstance(items, list):
            raise BadHistory(f"{source}: an export with no `instances` list")
    elif isinstance(data, list):
        items = data
    else:
        items = [data]
    if not items:
        raise BadHistory(f"{source}: holds no orchestration history")
    runs = []
    for n, item in enumerate(items):
        label = source if len(items) == 1 else f"{source}#{n}"
        runs.append(run_from(item, label))
    return runs


def run_from(item: Any, source: str) -> RecordedRun:
    """One history: a status with `historyEvents` (served) or an object with `history` (raw)."""
    try:
        return _run_from(item, source)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:  # a field of a wrong type
        raise BadHistory(f"{source}: a malformed history event ({type(exc).__name__}: {exc})") from None


def _run_from(item: Any, source: str) -> RecordedRun:
    if not isinstance(item, dict):
        raise BadHistory(f"{source}: not an orchestration status object (a {type(item).__name__})")
    raw = item.get("history")
    served = item.get("historyEvents")
    if isinstance(raw, list) and raw and all(isinstance(e, dict) for e in raw):
        if isinstance(raw[0].get("EventType"), int):
            return _raw_run(item, raw, source)
        served = raw  # `history` in the served shape (the SDK's own status object names it so)
    if not isinstance(served, list):
        raise BadHistory(
            f"{source}: no `historyEvents` (fetch the status with showHistory=true&showHistoryOutput=true"
            "&showInput=true)"
        )
    return _served_run(item, served, source)


def _events(events: list[Any], source: str, raw: bool) -> None:
    """Refuse a history too long, or with an event the replay could not read."""
    if len(events) > MAX_EVENTS:
        raise BadHistory(f"{source}: {len(events)} events, more than the {MAX_EVENTS} a history may have")
    for n, event in enumerate(events):
        if not isinstance(event, dict) or "EventType" not in event:
            raise BadHistory(f"{source}: history event {n} is not an object with an EventType")
        kind = event["EventType"]
        if raw and (not isinstance(kind, int) or isinstance(kind, bool)):
            raise BadHistory(f"{source}: history event {n}: EventType must be an integer in a raw history")
        if not raw and not isinstance(kind, str):
            raise BadHistory(f"{source}: history event {n}: EventType must be a name (e.g. TaskCompleted)")
        if raw:
            for key in ("EventId", "TaskScheduledId", "TimerId"):
                value = event.get(key)
                if key in event and (not isinstance(value, int) or isinstance(value, bool)):
                    raise BadHistory(f"{source}: history event {n}: {key} must be an integer")


# -- the served shape ---------------------------------------------------------------------------------
_SERVED_COMPLETIONS = {
    "TaskCompleted": ("activity", "completed"),
    "TaskFailed": ("activity", "failed"),
    "SubOrchestrationInstanceCompleted": ("sub", "completed"),
    "SubOrchestrationInstanceFailed": ("sub", "failed"),
}


def _served_run(item: dict[str, Any], events: list[Any], source: str) -> RecordedRun:
    _events(events, source, raw=False)
    start = next((n for n, e in enumerate(events) if e.get("EventType") == "ExecutionStarted"), None)
    if start is None:
        raise BadHistory(f"{source}: the history has no ExecutionStarted event")
    first = events[start]
    name = item.get("name") or first.get("FunctionName") or first.get("Name")
    if not isinstance(name, str) or not name:
        raise BadHistory(f"{source}: no orchestrator name (neither `name` nor ExecutionStarted.FunctionName)")
    if "input" in item and item.get("input") is not None:
        input_text = json.dumps(item["input"])
    else:
        input_text = json_text(first.get("Input"))
    run = RecordedRun(
        source=source,
        instance_id=str(item.get("instanceId") or "replayed"),
        name=name,
        input_text=input_text,
        started_at=_time(first.get("Timestamp")),
        start_index=start,
    )
    timers: list[Scheduled] = []
    requests: dict[str, Scheduled] = {}
    for n, event in enumerate(events):
        if n == start:
            continue
        kind = event.get("EventType")
        at = _time(event.get("Timestamp"))
        if kind in _SERVED_COMPLETIONS:
            what, outcome = _SERVED_COMPLETIONS[kind]
            scheduled = Scheduled(
                n,
                what,
                str(event.get("FunctionName") or ""),
                decoded(event["Input"]) if "Input" in event else UNKNOWN,
                target=_text_or_none(event.get("InstanceId")) if what == "sub" else None,
                at=_time(event.get("ScheduledTime")) or at,
                ref=("n", n),
            )
            run.scheduled.append(scheduled)
            incoming = Incoming(n, outcome, ref=scheduled.ref, at=at)
            if outcome == "completed":
                incoming.text = json.dumps(event.get("Result"))
            else:
                incoming.reason = str(event.get("Reason") or "")
                incoming.details = str(event.get("Details") or "")
            run.incoming.append(incoming)
        elif kind in ("TaskScheduled", "SubOrchestrationInstanceCreated"):  # not completed yet
            what = "activity" if kind == "TaskScheduled" else "sub"
            run.scheduled.append(
                Scheduled(
                    n,
                    what,
                    str(event.get("Name") or event.get("FunctionName") or ""),
                    decoded(event["Input"]) if "Input" in event else UNKNOWN,
                    target=_text_or_none(event.get("InstanceId")) if what == "sub" else None,
                    at=at,
                    ref=("n", n),
                )
            )
        elif kind == "TimerCreated":
            timer = Scheduled(n, "timer", fire_at=_time(event.get("FireAt")), at=at, ref=("n", n))
            run.scheduled.append(timer)
            timers.append(timer)
        elif kind == "TimerFired":
            fire_at = _time(event.get("FireAt"))
            timer = next((t for t in timers if t.fire_at == fire_at), None)
            if timer is not None:
                timers.remove(timer)
            run.incoming.append(Incoming(n, "fired", ref=timer.ref if timer else ("n", n), at=at))
        elif kind in ("EntityCalled", "EntitySignaled"):  # the local host's condensed entity events
            what = "call" if kind == "EntityCalled" else "signal"
            scheduled = Scheduled(
                n,
                what,
                str(event.get("Operation") or ""),
                decoded(event["Input"]) if "Input" in event else UNKNOWN,
                target=_text_or_none(event.get("InstanceId")),
                at=_time(event.get("ScheduledTime")) or at,
                ref=("n", n),
            )
            run.scheduled.append(scheduled)
            if what == "call" and ("Result" in event or "Error" in event):
                answer: dict[str, Any] = {"result": json.dumps(event.get("Result"))}
                if "Error" in event:
                    answer = {"result": json.dumps(event.get("Error")), "exceptionType": "Exception"}
                run.incoming.append(
                    Incoming(n, "answered", ref=scheduled.ref, text=json.dumps(answer), at=at)
                )
        elif kind == "EventSent":  # Azure: an entity call or signal, its request message as Input
            message = decoded(event.get("Input"))
            message = message if isinstance(message, dict) else {}
            what = "signal" if message.get("signal") else "call"
            scheduled = Scheduled(
                n,
                what,
                str(message.get("op") or event.get("Name") or ""),
                decoded(message["input"]) if "input" in message else UNKNOWN,
                target=_text_or_none(event.get("InstanceId")),
                at=at,
                ref=("n", n),
                request_id=str(message["id"]) if message.get("id") else None,
            )
            run.scheduled.append(scheduled)
            if scheduled.request_id:
                requests[scheduled.request_id] = scheduled
        elif kind == "EventRaised":
            name_raised = str(event.get("Name") or "")
            call = requests.get(name_raised)
            text = json_text(event.get("Input"))
            if call is not None:
                run.incoming.append(Incoming(n, "answered", ref=call.ref, text=text, at=at))
            else:
                run.incoming.append(Incoming(n, "raised", name=name_raised, text=text, at=at))
        elif kind == "ExecutionTerminated":
            run.incoming.append(Incoming(n, "terminated", reason=str(event.get("Reason") or ""), at=at))
        elif kind in ("ExecutionCompleted", "ExecutionFailed"):
            run.end = (str(event.get("OrchestrationStatus") or "Completed"), event.get("Result"))
            run.end_index = n
    # The order things were scheduled in: by time (a stable sort keeps the history's order for ties).
    run.scheduled.sort(key=lambda s: s.at.timestamp() if s.at else float("inf"))
    return run


# -- the raw shape ------------------------------------------------------------------------------------
_RAW_COMPLETIONS = {
    h.TASK_COMPLETED: "completed",
    h.TASK_FAILED: "failed",
    h.SUB_COMPLETED: "completed",
    h.SUB_FAILED: "failed",
}


def scheduled_from_raw(event: dict[str, Any], index: int, at: datetime | None) -> Scheduled | None:
    """The `Scheduled` a raw scheduling event records (None for other events); shared by the recorded
    history and the events the code's episode produced, so both are read the same way."""
    kind = event.get("EventType")
    retry = "RetryOf" in event and (kind == h.TIMER_CREATED or int(event.get("Attempt") or 1) > 1)
    ref = event.get("EventId")
    if kind == h.TASK_SCHEDULED:
        return Scheduled(
            index,
            "activity",
            str(event.get("Name") or ""),
            decoded(event.get("Input")),
            at=at,
            retry_step=retry,
            ref=ref,
        )
    if kind == h.SUB_CREATED:
        return Scheduled(
            index,
            "sub",
            str(event.get("Name") or ""),
            decoded(event.get("Input")),
            target=_text_or_none(event.get("InstanceId")),
            at=at,
            retry_step=retry,
            ref=ref,
        )
    if kind == h.TIMER_CREATED:
        return Scheduled(index, "timer", fire_at=_time(event.get("FireAt")), at=at, retry_step=retry, ref=ref)
    if kind == h.EVENT_SENT:
        message = decoded(event.get("Input"))
        message = message if isinstance(message, dict) else {}
        signal = bool(message.get("signal")) or "SignalId" in event
        request = event.get("RequestId") or (None if signal else message.get("id"))
        return Scheduled(
            index,
            "signal" if signal else "call",
            str(message.get("op") or event.get("Name") or ""),
            decoded(message["input"]) if "input" in message else UNKNOWN,
            target=_text_or_none(event.get("InstanceId")),
            at=at,
            ref=ref,
            request_id=str(request) if request else None,
        )
    return None


def _raw_run(item: dict[str, Any], events: list[Any], source: str) -> RecordedRun:
    _events(events, source, raw=True)
    start = next((n for n, e in enumerate(events) if e.get("EventType") == h.EXECUTION_STARTED), None)
    if start is None:
        raise BadHistory(f"{source}: the history has no ExecutionStarted event")
    first = events[start]
    name = item.get("name") or first.get("Name")
    if not isinstance(name, str) or not name:
        raise BadHistory(f"{source}: no orchestrator name (neither `name` nor ExecutionStarted.Name)")
    input_text = item["inputText"] if isinstance(item.get("inputText"), str) else first.get("Input")
    episode = next(
        (_time(e.get("Timestamp")) for e in events if e.get("EventType") == h.ORCHESTRATOR_STARTED), None
    )
    run = RecordedRun(
        source=source,
        instance_id=str(item.get("instanceId") or "replayed"),
        name=name,
        input_text=input_text if isinstance(input_text, str) else None,
        started_at=episode,
        start_index=start,
        parent_instance_id=item.get("parentInstanceId"),
        exact=True,
    )
    requests: dict[str, Scheduled] = {}
    for n, event in enumerate(events):
        kind = event.get("EventType")
        if kind == h.ORCHESTRATOR_STARTED:
            episode = _time(event.get("Timestamp"))
            continue
        scheduled = scheduled_from_raw(event, n, episode)
        if scheduled is not None:
            run.scheduled.append(scheduled)
            if scheduled.request_id:
                requests[scheduled.request_id] = scheduled
        elif kind in _RAW_COMPLETIONS:
            outcome = _RAW_COMPLETIONS[kind]
            incoming = Incoming(n, outcome, ref=event.get("TaskScheduledId"), at=episode)
            if outcome == "completed":
                incoming.text = event.get("Result")
            else:
                incoming.reason, incoming.details = event.get("Reason"), event.get("Details")
            run.incoming.append(incoming)
        elif kind == h.TIMER_FIRED:
            run.incoming.append(Incoming(n, "fired", ref=event.get("TimerId"), at=episode))
        elif kind == h.EVENT_RAISED:
            raised = str(event.get("Name") or "")
            call = requests.get(raised)
            if call is not None:
                run.incoming.append(
                    Incoming(n, "answered", ref=call.ref, text=event.get("Input"), at=episode)
                )
            else:
                run.incoming.append(Incoming(n, "raised", name=raised, text=event.get("Input"), at=episode))
        elif kind == h.EXECUTION_TERMINATED:
            run.incoming.append(Incoming(n, "terminated", reason=str(event.get("Reason") or ""), at=episode))
        elif kind in (h.EXECUTION_COMPLETED, h.EXECUTION_FAILED):
            run.end = (str(event.get("OrchestrationStatus") or "Completed"), decoded(event.get("Result")))
            run.end_index = n
    return run
