"""Text formatting shared by the CLI tables and the TUI (plain strings, no rich or textual).

Both front ends show the same things (tool-call arguments, results, token usage, previews, and the
times and durations of orchestration instances); formatting them in one place keeps the two views
saying the same thing, and keeps the CLI from importing the TUI (and with it textual) to print a
table.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "total_tokens")


def clip(text: str, width: int) -> str:
    """At most `width` characters, with an ellipsis when cut (the only truncation rule we use)."""
    if width < 1:
        return ""
    return text if len(text) <= width else text[: width - 1] + "…"


def one_line(text: str, width: int) -> str:
    """Whitespace collapsed to single spaces, then clipped to `width` characters."""
    return clip(" ".join(text.split()), width)


def format_value(value: Any, limit: int = 400) -> str:
    """Compact one-line JSON (or the string itself) for arguments and results."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)
    return one_line(text, limit)


def format_arguments(arguments: Any) -> str:
    """`key=value, …` for a dict of arguments; raw JSON otherwise (some models send a string)."""
    if isinstance(arguments, str):
        try:
            arguments = json.loads(arguments)
        except ValueError:
            return format_value(arguments)
    if isinstance(arguments, dict):
        return ", ".join(
            f"{k}={json.dumps(v, ensure_ascii=False, default=str)}" for k, v in arguments.items()
        )
    return format_value(arguments)


def plain(text: str) -> str:
    """Drop the commonest Markdown marks so a one-line preview reads as text."""
    for mark in ("**", "__", "`", "#"):
        text = text.replace(mark, "")
    return " ".join(text.split())


def usage_of(entry: dict[str, Any]) -> dict[str, int] | None:
    """Token usage of one stored assistant message, if it carries any."""
    response = entry.get("agent_response")
    usage = response.get("usage") if isinstance(response, dict) else None
    if not isinstance(usage, dict):
        return None
    return {k: v for k, v in usage.items() if isinstance(v, int)}


def total_usage(history: list[dict[str, Any]]) -> dict[str, int]:
    """Token usage summed over every turn of the session."""
    totals = dict.fromkeys(USAGE_FIELDS, 0)
    for entry in history:
        for key, value in (usage_of(entry) or {}).items():
            totals[key] = totals.get(key, 0) + value
    return totals


def usage_text(usage: dict[str, int]) -> str:
    """`in 12 · out 7 · total 19` (other counters appended by name)."""
    parts = [
        f"in {usage.get('prompt_tokens', 0)}",
        f"out {usage.get('completion_tokens', 0)}",
        f"total {usage.get('total_tokens', 0)}",
    ]
    parts += [f"{k} {v}" for k, v in usage.items() if k not in USAGE_FIELDS]
    return " · ".join(parts)


def parse_time(value: Any) -> datetime | None:
    """Parse an ISO-8601 timestamp as sent by the host (with `Z` or an offset); None when absent/bad."""
    if not isinstance(value, str) or not value:
        return None
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def local_time(stamp: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """A timestamp in local time; empty when unknown."""
    return stamp.astimezone().strftime(fmt) if stamp else ""


def time_text(value: datetime | str | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    """Local time, to the second, of a timestamp or of the host's ISO-8601 text; empty when unknown."""
    return local_time(value if isinstance(value, datetime) else parse_time(value), fmt)


# ---- orchestration instances ------------------------------------------------------------------

AGENT_ENTITY_PREFIX = "@dafx-"
"""An `EntityCalled` whose InstanceId starts with this is a call to a durableagent session."""

STATUS_STYLES = {
    "Pending": "dim",
    "Running": "bold yellow",
    "Suspended": "cyan",
    "ContinuedAsNew": "blue",
    "Completed": "bold green",
    "Failed": "bold red",
    "Terminated": "magenta",
    "Canceled": "magenta",
}
"""Rich styles of runtime statuses, the same in CLI tables and the TUI."""


@dataclass(frozen=True)
class TimelineRow:
    """One line of an instance's history as the CLI and the TUI show it."""

    time: datetime | None
    kind: str
    """start, activity, suborchestration, timer, event, agent, entity, end, suspend, resume, other."""
    title: str
    detail: str = ""
    duration: timedelta | None = None
    failed: bool = False
    agent_session: tuple[str, str] | None = None
    """(agent name as in the entity name, lower case; session key) for calls to a durableagent agent."""
    event: dict[str, Any] = field(default_factory=dict)


def agent_session_of(entity_instance_id: Any) -> tuple[str, str] | None:
    """`@dafx-weatheragent@key` -> ("weatheragent", "key"); None for other entities."""
    if not isinstance(entity_instance_id, str) or not entity_instance_id.lower().startswith(
        AGENT_ENTITY_PREFIX
    ):
        return None
    name, sep, key = entity_instance_id[len(AGENT_ENTITY_PREFIX) :].partition("@")
    return (name, key) if sep and name and key else None


def duration_text(duration: timedelta | None) -> str:
    """`850 ms`, `12.3 s`, `4 min 05 s`, `2 h 03 min`; empty when unknown."""
    if duration is None:
        return ""
    seconds = max(duration.total_seconds(), 0.0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def timeline(history: Any) -> list[TimelineRow]:
    """The `historyEvents` of an instance status as display rows, oldest first.

    Durations come from `ScheduledTime` (activities, sub-orchestrations, entity calls) and, for a
    fired timer, from when it was created; failures (`TaskFailed`, a failed sub-orchestration, an
    entity call with an error, a Failed end) are marked so both views can show them in red.
    """
    rows: list[TimelineRow] = []
    timers: dict[str, datetime | None] = {}
    for event in history if isinstance(history, list) else []:
        if isinstance(event, dict):
            rows.append(_timeline_row(event, timers))
    return rows


def _timeline_row(event: dict[str, Any], timers: dict[str, datetime | None]) -> TimelineRow:
    """One history event as a row; `timers` maps FireAt to creation time across calls."""
    event_type = str(event.get("EventType") or "")
    stamp = parse_time(event.get("Timestamp"))
    scheduled = parse_time(event.get("ScheduledTime"))
    duration = stamp - scheduled if stamp and scheduled else None
    name = str(event.get("FunctionName") or event.get("Name") or "")
    kind, title, detail, failed = "other", event_type or "event", "", False
    agent: tuple[str, str] | None = None
    if event_type == "ExecutionStarted":
        kind, title, detail = "start", f"started {name}".strip(), _input_text(event, "Input")
    elif event_type in ("TaskCompleted", "TaskFailed"):
        kind, title = "activity", name or "activity"
        failed = event_type == "TaskFailed"
        detail = _reason(event) if failed else _input_text(event, "Result")
    elif event_type in ("SubOrchestrationInstanceCompleted", "SubOrchestrationInstanceFailed"):
        kind, title = "suborchestration", f"{name} ({event.get('InstanceId') or '?'})"
        failed = event_type.endswith("Failed")
        detail = _reason(event) if failed else _input_text(event, "Result")
    elif event_type in ("TaskScheduled", "SubOrchestrationInstanceCreated"):  # not completed yet
        sub = event_type != "TaskScheduled"
        kind = "suborchestration" if sub else "activity"
        title = f"{name} ({event.get('InstanceId') or '?'})" if sub else name or "activity"
        detail = f"running, input {_input_text(event, 'Input')}" if "Input" in event else "running"
    elif event_type == "TimerCreated":
        fire_at = str(event.get("FireAt") or "")
        timers[fire_at] = stamp
        kind, title = "timer", "timer created"
        when = parse_time(fire_at)
        same_day = (
            when is not None and stamp is not None and when.astimezone().date() == stamp.astimezone().date()
        )
        detail = f"fires at {local_time(when, '%H:%M:%S' if same_day else '%Y-%m-%d %H:%M:%S')}".strip()
    elif event_type == "TimerFired":
        created = timers.pop(str(event.get("FireAt") or ""), None)
        kind, title = "timer", "timer fired"
        duration = stamp - created if stamp and created else None
    elif event_type == "EventRaised":
        kind, title, detail = "event", f"event {name}", _input_text(event, "Input")
    elif event_type in ("EntityCalled", "EntitySignaled"):
        target = str(event.get("InstanceId") or "?")
        signaled = event_type == "EntitySignaled"
        agent = agent_session_of(target)
        failed = bool(event.get("Error"))
        detail = format_value(event["Error"], 200) if failed else _input_text(event, "Result")
        if agent is not None:
            kind, title = (
                "agent",
                f"agent {agent[0]} · session {agent[1]}" + (" (signal)" if signaled else ""),
            )
        else:
            kind = "entity"
            title = f"{'signal' if signaled else 'call'} {target} {event.get('Operation') or ''}".strip()
    elif event_type == "ExecutionCompleted":
        status = str(event.get("OrchestrationStatus") or "Completed")
        kind, title, detail, failed = "end", status.lower(), _input_text(event, "Result"), status == "Failed"
    elif event_type == "ContinueAsNew":
        title, detail = "continued as new", _input_text(event, "Input")
    elif event_type in ("ExecutionSuspended", "ExecutionResumed"):
        kind = "suspend" if event_type == "ExecutionSuspended" else "resume"
        title, detail = kind + ("ed" if kind == "suspend" else "d"), str(event.get("Reason") or "")
    return TimelineRow(stamp, kind, title, detail, duration, failed, agent, event)


def pending_timer(history: Any) -> datetime | None:
    """When the instance's unfired timer fires (the latest one), if it is waiting on one."""
    pending: dict[str, datetime | None] = {}
    for event in history if isinstance(history, list) else []:
        if isinstance(event, dict) and event.get("EventType") == "TimerCreated":
            pending[str(event.get("FireAt"))] = parse_time(event.get("FireAt"))
        elif isinstance(event, dict) and event.get("EventType") == "TimerFired":
            pending.pop(str(event.get("FireAt")), None)
    times = [t for t in pending.values() if t is not None]
    return max(times) if times else None


def status_note(status: dict[str, Any]) -> str:
    """What a live instance is doing, as far as the API tells: its custom status, or a pending timer."""
    if status.get("runtimeStatus") not in ("Running", "Pending", "Suspended"):
        return ""
    custom = status.get("customStatus")
    if custom not in (None, "", {}, []):
        return format_value(custom, 200)
    fire_at = pending_timer(status.get("historyEvents"))
    return f"timer until {local_time(fire_at, '%H:%M:%S')}" if fire_at else ""


def _input_text(event: dict[str, Any], key: str) -> str:
    """An event's Input/Result (JSON text or a value) as one line; empty when absent."""
    value = event.get(key)
    if value is None:
        return ""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    return format_value(value, 200)


def _reason(event: dict[str, Any]) -> str:
    reason = format_value(event.get("Reason") or "failed", 200)
    details = event.get("Details")
    return f"{reason} ({format_value(details, 120)})" if details else reason
