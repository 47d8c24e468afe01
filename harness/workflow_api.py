"""Hosted agent-framework Workflows seen from the outside: Microsoft's three routes per workflow
(`POST /api/workflow/{name}/run`, `GET .../status/{id}`, `POST .../respond/{id}/{requestId}`),
the event stream of the status route (`Accept: text/event-stream`, durableagent/workflows/events.py),
and each workflow's graph.

The CLI (`workflow ...`), the TUI's Workflows screen and the pytest `workflow_runner` read workflows
through this module and `harness.client`, never through the library, so they work the same against
the local host, `func` and a deployed app. Two facts come from elsewhere:

- which workflow an instance belongs to: the Durable instance API names its orchestrator
  `dafx-{workflow}` (a sub-workflow's child instance has an id `{parent}~{executor}~{n}`);
- the graph (executors and edges as agent-framework's `WorkflowViz` draws them): the routes do not
  serve it; `harness.workflow_graph` reads it from the app.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
from httpx_sse import SSEError, aconnect_sse, connect_sse

from harness.answers import ClientError, error_text, json_object, raise_for

__all__ = [
    "ORCHESTRATOR_PREFIX",
    "WorkflowEvent",
    "parse_input",
    "workflow_of",
]

ORCHESTRATOR_PREFIX = "dafx-"
"""A workflow's orchestrator is `dafx-{workflow}` (Microsoft's name, peer notes)."""
SUB_SEPARATOR = "~"
EVENT_STREAM = "text/event-stream"
STREAM_SECONDS = 2
"""How long one event-stream response follows a running instance before the reader reconnects
with `Last-Event-ID` (nothing is missed in between). Short, because a host that cannot stream a
body (an app without `http_streams=True`) sends a response's events when it ends: this bounds how
late they are; a streaming host sends each as it happens either way."""
MAX_WAIT_SECONDS = 200
"""The run route's upper bound for `timeoutSeconds`."""
RECONNECTS = 10
"""Consecutive failed connections before the event reader gives up (with the pauses between
them, about 15 s: a host restarting after a crash is back well within that)."""
FINISHED = ("Completed", "Failed", "Terminated", "Canceled")


def workflow_of(status: dict[str, Any] | None) -> str | None:
    """The workflow an instance (a Durable instance API status) runs, None when not a workflow's.

    A sub-workflow's child instance (`{parent}~{executor}~{n}`) is a workflow's too, of its
    sub-workflow; `is_top_level` tells the two apart."""
    if not isinstance(status, dict):
        return None
    name = str(status.get("name") or "")
    if not name.lower().startswith(ORCHESTRATOR_PREFIX) or len(name) == len(ORCHESTRATOR_PREFIX):
        return None
    return name[len(ORCHESTRATOR_PREFIX) :]


def is_top_level(status: dict[str, Any]) -> bool:
    """Not a sub-workflow's child instance (those have `~` in their generated ids)."""
    return SUB_SEPARATOR not in str(status.get("instanceId") or "")


def parse_input(text: str) -> Any:
    """A workflow input from the command line: JSON when it parses, else the text as it is."""
    try:
        return json.loads(text)
    except ValueError:
        return text


# ---- requests and answers ------------------------------------------------------------------------


def _base(name: str) -> str:
    if not name:
        raise ClientError("a workflow name must not be empty")
    return f"/api/workflow/{quote(name, safe='')}"


def instance_path(name: str, instance_id: str, route: str) -> str:
    if not instance_id:
        raise ClientError("an instance id must not be empty")
    return f"{_base(name)}/{route}/{quote(instance_id, safe='')}"


def run_request(name: str, input: Any, run_id: str | None) -> tuple[str, str, dict[str, Any]]:
    """(method, path, options) of starting `name`: text as text, anything else as JSON."""
    options: dict[str, Any] = {"params": {"runId": run_id} if run_id else {}}
    if isinstance(input, str):
        options["content"] = input.encode("utf-8")
        options["headers"] = {"content-type": "text/plain; charset=utf-8"}
    else:
        options["json"] = input
    return "POST", f"{_base(name)}/run", options


def _unknown_workflow(response: httpx.Response, name: str) -> ClientError:
    """A 404 from a route the host does not have: no workflow of that name (or not hosted here)."""
    return ClientError(
        f"unknown workflow {name!r}: the app has no route {response.request.method} "
        f"{response.request.url.path}",
        status=404,
    )


def _from_route(response: httpx.Response) -> bool:
    """Whether a 404 is the workflow route's own answer (`{"status": "error", ...}`: no such
    instance or request) rather than the host's for a route it does not have (no such workflow)."""
    try:
        body = response.json()
    except ValueError:
        return False
    return isinstance(body, dict) and body.get("status") == "error"


def run_result(response: httpx.Response, name: str) -> dict[str, Any]:
    """The run route's 202 (links) or 200 (finished); an unknown workflow is one line."""
    if response.status_code == 404:
        raise _unknown_workflow(response, name)
    if response.status_code == 400:
        raise ClientError(f"workflow {name!r} refused the input: {error_text(response)}", status=400)
    body = json_object(response, "workflow run")
    if not body.get("instanceId"):
        raise ClientError("workflow run: unexpected response body (no instanceId)")
    return body


def status_result(response: httpx.Response, name: str, instance_id: str) -> dict[str, Any] | None:
    """The status route's body; None for an instance the workflow does not have."""
    if response.status_code == 404:
        if not _from_route(response):
            raise _unknown_workflow(response, name)
        return None
    return json_object(response, "workflow status")


def respond_request(name: str, instance_id: str, request_id: str, answer: Any) -> tuple[str, dict[str, Any]]:
    if not request_id:
        raise ClientError("a request id must not be empty")
    path = f"{instance_path(name, instance_id, 'respond')}/{quote(request_id, safe='')}"
    return path, {"json": answer}


def respond_result(response: httpx.Response, name: str) -> dict[str, Any]:
    """200 delivered; the route's 4xx (wrong shape, unknown request, finished instance) as one line."""
    if response.status_code == 404 and not _from_route(response):
        raise _unknown_workflow(response, name)
    if not response.is_success:
        raise ClientError(error_text(response), status=response.status_code)
    return json_object(response, "workflow respond")


# ---- the event stream ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkflowEvent:
    """One event of a workflow instance (events.py lists the kinds); `id` is its position, -1 for
    an `agent_update` (an agent executor's text as it streams, between numbered events); `cursor`
    is the SSE id as sent, what `Last-Event-ID` resumes after."""

    id: int
    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    cursor: str = ""

    @property
    def numbered(self) -> bool:
        """A workflow event proper (not an agent's streamed text)."""
        return self.id >= 0


def _event(kind: str, data: str, event_id: str) -> WorkflowEvent:
    try:
        parsed = json.loads(data) if data else {}
    except ValueError:
        parsed = {"raw": data}
    try:
        number = int(event_id)
    except ValueError:
        number = -1
    body = parsed if isinstance(parsed, dict) else {"value": parsed}
    return WorkflowEvent(number, kind or "message", body, event_id or "")


class _Follower:
    """What the async and the blocking reader share: the request of each connection (after the last
    event seen), and when to stop."""

    def __init__(
        self, name: str, instance_id: str, after: int | str, seconds: float, deadline: float | None
    ) -> None:
        self.path = instance_path(name, instance_id, "status")
        self.name = name
        self.instance_id = instance_id
        # an event number, or an `agent_update`'s cursor (`N:M:A.S`) to go on with its agent's text
        self.cursor = after if isinstance(after, str) else (str(after) if after >= 0 else "")
        self.seconds = seconds
        self.deadline = deadline
        self.failures = 0

    def request(self) -> tuple[str, dict[str, Any]]:
        seconds = self.seconds
        if self.deadline is not None:
            seconds = min(seconds, self.deadline - time.monotonic())
        whole = max(1, min(MAX_WAIT_SECONDS, int(seconds)))
        headers = {"Accept": EVENT_STREAM}
        if self.cursor:
            headers["Last-Event-ID"] = self.cursor
        return self.path, {
            "headers": headers,
            "params": {"timeoutSeconds": str(whole)},
            "timeout": whole + 30,
        }

    def not_streamed(self, response: httpx.Response) -> ClientError:
        if response.status_code == 404 and not _from_route(response):
            return _unknown_workflow(response, self.name)
        if response.status_code == 404:
            return ClientError(error_text(response), status=404)
        try:
            raise_for(response)
        except ClientError as exc:
            return exc
        return ClientError(f"the status route of {self.name!r} did not answer with an event stream")

    def take(self, kind: str, data: str, event_id: str) -> WorkflowEvent:
        event = _event(kind, data, event_id)
        if event.cursor:
            self.cursor = event.cursor
        self.failures = 0
        return event

    def keep_following(self) -> bool:
        """A response ended without the `status` event: whether to ask again (the deadline)."""
        return self.deadline is None or time.monotonic() < self.deadline

    def broke(self, exc: Exception) -> float:
        """A connection failed: the pause before the next one (a host restarting takes seconds);
        after `RECONNECTS` failures in a row, a one-line ClientError."""
        self.failures += 1
        if self.failures > RECONNECTS:
            raise ClientError(f"the event stream of {self.instance_id!r} broke: {exc}") from None
        return min(0.25 * 2 ** (self.failures - 1), 2.0)


def iter_events(
    http: httpx.Client,
    name: str,
    instance_id: str,
    after: int | str = -1,
    seconds: float = STREAM_SECONDS,
    until: float | None = None,
) -> Iterator[WorkflowEvent]:
    """The instance's events after `after` (an event number, or the `cursor` of the last event
    seen), as they happen, up to the `status` event (or `until`, a `time.monotonic()` deadline); a
    response the route ends is resumed after the last event it sent."""
    follower = _Follower(name, instance_id, after, seconds, until)
    while True:
        path, options = follower.request()
        try:
            with connect_sse(http, "GET", path, **options) as source:
                response = source.response
                if not response.headers.get("content-type", "").startswith(EVENT_STREAM):
                    response.read()
                    raise follower.not_streamed(response)
                for sse in source.iter_sse():
                    event = follower.take(sse.event, sse.data, sse.id)
                    yield event
                    if event.kind == "status":
                        return
        except (httpx.TransportError, SSEError) as exc:
            time.sleep(follower.broke(exc))
            continue
        if not follower.keep_following():
            return


async def aiter_events(
    http: httpx.AsyncClient,
    name: str,
    instance_id: str,
    after: int | str = -1,
    seconds: float = STREAM_SECONDS,
    until: float | None = None,
) -> AsyncIterator[WorkflowEvent]:
    """Async twin of `iter_events` (the TUI)."""
    follower = _Follower(name, instance_id, after, seconds, until)
    while True:
        path, options = follower.request()
        try:
            async with aconnect_sse(http, "GET", path, **options) as source:
                response = source.response
                if not response.headers.get("content-type", "").startswith(EVENT_STREAM):
                    await response.aread()
                    raise follower.not_streamed(response)
                async for sse in source.aiter_sse():
                    event = follower.take(sse.event, sse.data, sse.id)
                    yield event
                    if event.kind == "status":
                        return
        except (httpx.TransportError, SSEError) as exc:
            await asyncio.sleep(follower.broke(exc))
            continue
        if not follower.keep_following():
            return


# ---- events in words (the CLI's `workflow watch` and the TUI's timeline) ----------------------------

EXECUTOR_STYLES = {
    "running": "bold yellow",
    "completed": "bold green",
    "failed": "bold red",
    "waiting": "bold cyan",
    "idle": "dim",
}
"""Rich styles of an executor's state (customStatus.executors, plus `waiting`: it asked a person)."""


@dataclass(frozen=True)
class EventLine:
    """An event as one line: a mark, the executor (or what the event is about), the detail, a style."""

    mark: str
    subject: str
    detail: str
    style: str = ""


def _short(value: Any, limit: int) -> str:
    from harness.formatting import format_value

    return format_value(value, limit)


def describe_event(event: WorkflowEvent, limit: int = 120) -> EventLine:
    """One line for an event (events.py lists the kinds and their data)."""
    data, kind = event.data, event.kind
    if kind == "started":
        return EventLine("▶", "started", f"input {_short(data.get('input'), limit)}", "bold")
    if kind == "superstep_started":
        return EventLine("┌", f"superstep {data.get('superstep')}", "", "dim")
    if kind == "superstep_completed":
        return EventLine("└", f"superstep {data.get('superstep')} done", "", "dim")
    if kind == "executor_invoked":
        return EventLine(
            "→", str(data.get("executor")), f"input {_short(data.get('input'), limit)}", "yellow"
        )
    if kind == "executor_completed":
        parts = []
        if data.get("kind") == "agent":
            parts.append(_short(data.get("text") or "", limit))
            usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
            if usage.get("total_tokens"):
                parts.append(f"({usage['total_tokens']} tokens)")
        else:
            if data.get("sent"):
                parts.append(f"sent {_short(data['sent'], limit)}")
            if data.get("outputs"):
                parts.append(f"outputs {_short(data['outputs'], limit)}")
            if data.get("state"):
                parts.append(f"state {', '.join(map(str, data['state']))}")
        return EventLine("✓", str(data.get("executor")), " ".join(parts), "green")
    if kind == "executor_failed":
        return EventLine("✗", str(data.get("executor")), _short(data.get("error"), limit), "bold red")
    if kind == "request_info":
        detail = f"asks {data.get('requestId')}: {_short(data.get('requestData'), limit)}"
        if data.get("responseType"):
            detail += f" (answer: {data['responseType']})"
        return EventLine("?", str(data.get("sourceExecutor")), detail, "bold cyan")
    if kind == "request_answered":
        return EventLine(
            "!", "answered", f"{data.get('requestId')}: {_short(data.get('response'), limit)}", "cyan"
        )
    if kind == "output":
        return EventLine("⇒", f"output of {data.get('executor')}", _short(data.get("data"), limit), "bold")
    if kind == "agent_update":
        executor = str(data.get("executor"))
        if data.get("kind") == "tool_call":
            call = f"{data.get('name')}({_short(data.get('arguments'), limit)})"
            return EventLine("…", executor, f"calls {call}", "magenta")
        if data.get("kind") == "tool_result":
            return EventLine("…", executor, f"tool result {_short(data.get('result'), limit)}", "magenta")
        return EventLine("…", executor, _short(data.get("text") or "", limit), "dim")
    if kind == "status":
        runtime = str(data.get("runtimeStatus"))
        value = data.get("error") if data.get("error") is not None else data.get("output")
        from harness.formatting import STATUS_STYLES

        return EventLine(
            "■", runtime, _short(value, limit) if value is not None else "", STATUS_STYLES.get(runtime, "")
        )
    return EventLine("·", kind, _short(data, limit))


@dataclass
class ExecutorRecord:
    """What the events say about one executor of an instance: its inputs, results, token use."""

    inputs: list[Any] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[Any] = field(default_factory=list)
    tokens: int = 0
    streamed: str = ""
    """An agent executor's text streamed since its last invocation (`agent_update`)."""


def executor_records(events: list[WorkflowEvent]) -> dict[str, ExecutorRecord]:
    """Per executor, in event order: each input it was invoked with and each result it gave."""
    records: dict[str, ExecutorRecord] = {}
    for event in events:
        executor = event.data.get("executor")
        kinds = ("executor_invoked", "executor_completed", "executor_failed", "agent_update")
        if event.kind not in kinds or not executor:
            continue
        record = records.setdefault(str(executor), ExecutorRecord())
        if event.kind == "agent_update":
            if event.data.get("kind") == "text":
                record.streamed += str(event.data.get("text") or "")
        elif event.kind == "executor_invoked":
            record.inputs.append(event.data.get("input"))
            record.streamed = ""
        elif event.kind == "executor_failed":
            record.errors.append(event.data.get("error"))
        else:
            record.results.append(event.data)
            usage = event.data.get("usage")
            if isinstance(usage, dict) and isinstance(usage.get("total_tokens"), int):
                record.tokens += usage["total_tokens"]
    return records


def executor_states(status: dict[str, Any] | None) -> dict[str, str]:
    """Each executor's state in an instance (status route body): customStatus.executors, with
    `waiting` for one whose request to a person is open."""
    custom = (status or {}).get("customStatus")
    states = dict(custom.get("executors") or {}) if isinstance(custom, dict) else {}
    for request in (status or {}).get("pendingHumanInputRequests") or []:
        source = str(request.get("requestId") or "").split(SUB_SEPARATOR, 1)
        executor = source[0] if len(source) > 1 else request.get("sourceExecutor")
        if executor:
            states[str(executor)] = "waiting"
    return states
