"""HTTP client for a durableagent Functions app (local host, `func` or deployed).

Everything goes through the documented HTTP contracts (docs/architecture.md) so the TUI and the CLI
work the same against any host. `AgentClient` is async (the TUI), `SyncAgentClient` is its blocking
twin (the CLI and scripts); both share request building and response parsing.

Orchestration instances go through the Durable HTTP API (`/runtime/webhooks/durabletask/`), as the
real extension serves it, so starting, reading, raising events, terminating and purging work the same
on the local host, `func` and Azure. Unknown instances and finished ones are one-line `ClientError`s.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Self
from urllib.parse import quote

import httpx

from durableagent.state import AgentState
from harness import workflow_api
from harness.answers import (
    ClientError,
    error_text,
    json_body,
    json_object,
    raise_for,
    run_result,
    transport_error,
)
from harness.formatting import parse_time
from harness.reply_stream import ReplyEvent, StreamBroken, aiter_reply, iter_reply
from harness.workflow_api import WorkflowEvent

__all__ = [
    "DEFAULT_PORT",
    "DEFAULT_URL",
    "FINISHED_STATUSES",
    "RUNTIME_STATUSES",
    "AgentClient",
    "ClientError",
    "InstanceTimeout",
    "SessionSummary",
    "SyncAgentClient",
    "entity_name",
    "is_finished",
]

DEFAULT_PORT = 7071
"""The port `func start` and the harness's stacks listen on when it is free."""
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"
DURABLE_PREFIX = "/runtime/webhooks/durabletask"
CONTINUATION_HEADER = "x-ms-continuation-token"
RUN_TIMEOUT = 300.0
"""A live model turn with tool calls can take a while; the app itself answers 202 on its own timeout."""


RUNTIME_STATUSES = ("Pending", "Running", "Completed", "ContinuedAsNew", "Failed", "Terminated", "Suspended")
"""Orchestration runtime statuses of the Durable HTTP API (`Canceled` is an older spelling, also final)."""
FINISHED_STATUSES = frozenset({"Completed", "Failed", "Terminated", "Canceled"})


class InstanceTimeout(ClientError):
    """`SyncAgentClient.wait` gave up; `last` is the instance status it saw last."""

    def __init__(self, message: str, last: dict[str, Any]) -> None:
        super().__init__(message)
        self.last = last


def is_finished(status: Any) -> bool:
    """Whether an instance status object is final (Completed, Failed, Terminated)."""
    return isinstance(status, dict) and status.get("runtimeStatus") in FINISHED_STATUSES


def newest_first(instances: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Instance status objects sorted by creation time, newest first (then by id, for a stable order)."""
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(
        instances,
        key=lambda item: (parse_time(item.get("createdTime")) or oldest, str(item.get("instanceId") or "")),
        reverse=True,
    )


@dataclass(frozen=True)
class SessionSummary:
    """One conversation (entity instance) of an agent, as listed by the Durable HTTP API."""

    session_id: str
    last_operation_time: datetime | None
    message_count: int
    last_message: str = ""


def entity_name(agent: str) -> str:
    """The Durable entity name that stores an agent's sessions (the library's own naming)."""
    # Imported here: the library pulls in agent-framework, which `show` and the TUI never need.
    from durableagent.session import entity_name_for

    return entity_name_for(agent)


def _session_state(state: Any) -> AgentState | None:
    """A session's state in either form (stored or as the API shows it); None when unreadable."""
    if not isinstance(state, dict):
        return None
    try:
        return AgentState.from_dict(state)
    except ValueError:
        return None


def message_count(state: Any) -> int:
    """Messages in a state document (counts the history, falling back to the stored counter)."""
    session = _session_state(state)
    if session is not None and session.message_count:
        return session.message_count
    count = state.get("message_count") if isinstance(state, dict) else None
    return count if isinstance(count, int) else 0


def _last_message(state: Any) -> str:
    """A short preview of the newest non-empty message, for session lists."""
    session = _session_state(state)
    if session is None:
        return ""
    for position in range(1, session.message_count + 1):
        try:
            entry = session.entry_from_end(position) or {}
        except ValueError:  # older entries that cannot be read: no preview rather than no list
            return ""
        if entry.get("status") == "error":
            return f"error: {entry.get('error') or 'failed turn'}"
        content = entry.get("content")
        if isinstance(content, str) and content.strip():
            return " ".join(content.split())
    return ""


def _entity_state(item: dict[str, Any]) -> Any:
    """The entity state from a listing row; some hosts send it JSON-encoded as a string."""
    state = item.get("state")
    if isinstance(state, str):
        try:
            return json.loads(state)
        except ValueError:
            return None
    return state


def summarize(items: list[dict[str, Any]]) -> list[SessionSummary]:
    """Turn Durable listing rows into summaries sorted newest first."""
    summaries = []
    for item in items:
        entity_id = item.get("entityId") or {}
        key = entity_id.get("key") if isinstance(entity_id, dict) else None
        if not key:
            continue
        state = _entity_state(item)
        summaries.append(
            SessionSummary(
                session_id=str(key),
                last_operation_time=parse_time(item.get("lastOperationTime")),
                message_count=message_count(state),
                last_message=_last_message(state),
            )
        )
    oldest = datetime.min.replace(tzinfo=UTC)
    summaries.sort(key=lambda s: (s.last_operation_time or oldest, s.session_id), reverse=True)
    return summaries


class _Requests:
    """Request building and response interpretation shared by the async and sync clients."""

    def __init__(self, base_url: str = DEFAULT_URL, key: str | None = None, timeout: float = 30.0) -> None:
        try:
            url = httpx.URL(base_url.strip())
        except (httpx.InvalidURL, ValueError) as exc:  # e.g. `http://[::1` or a port out of range
            reason = " ".join(str(exc).split())
            raise ClientError(f"invalid URL {base_url!r}: {reason}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise ClientError(f"invalid URL {base_url!r}: expected http(s)://HOST[:PORT]")
        if url.port is not None and not 1 <= url.port <= 65535:
            raise ClientError(f"invalid URL {base_url!r}: port {url.port} is not from 1 to 65535")
        self.base_url = str(url).rstrip("/")
        self.key = key
        self.timeout = timeout

    def _headers(self) -> dict[str, str]:
        return {"x-functions-key": self.key} if self.key else {}

    def _client_options(self) -> dict[str, Any]:
        return {"base_url": self.base_url, "headers": self._headers(), "timeout": self.timeout}

    def _health_result(self, response: httpx.Response) -> dict[str, Any]:
        """The health body; a 404 is said in the user's terms (the URL is not a durableagent app),
        not as the page the server sent (an HTML error page of some other server)."""
        if response.status_code == 404:
            raise ClientError(
                f"{self.base_url} is not a durableagent app (GET /api/health answered 404); check the URL",
                status=404,
            )
        raise_for(response)
        return json_body(response)

    @staticmethod
    def _run_request(agent: str, message: str, session_id: str | None) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"message": message}
        if session_id:
            body["sessionId"] = session_id
        return f"/api/agents/{quote(agent, safe='')}/run", body

    @staticmethod
    def _state_path(agent: str, session_id: str) -> str:
        return f"/api/agents/{quote(agent, safe='')}/{quote(session_id, safe='')}"

    @staticmethod
    def _state_result(response: httpx.Response) -> dict[str, Any] | None:
        if response.status_code == 404:
            return None
        raise_for(response)
        body = json_body(response)
        return body if isinstance(body, dict) else None

    @classmethod
    def _fork_request(
        cls, agent: str, session_id: str, turn: int, to: str | None
    ) -> tuple[str, dict[str, Any]]:
        body: dict[str, Any] = {"turn": turn}
        if to:
            body["session_id"] = to
        return cls._state_path(agent, session_id) + "/fork", body

    @staticmethod
    def _fork_result(response: httpx.Response) -> dict[str, Any]:
        """201 (forked) or 202 (still copying) as the JSON body; anything else a one-line ClientError."""
        raise_for(response)
        body = json_body(response)
        if not isinstance(body, dict) or not body.get("sessionId"):
            raise ClientError("fork: unexpected response body (no sessionId)")
        return body

    @staticmethod
    def _entities_path(agent: str, session_id: str | None = None) -> str:
        path = f"{DURABLE_PREFIX}/entities/{quote(entity_name(agent), safe='')}"
        return path if session_id is None else f"{path}/{quote(session_id, safe='')}"

    def _page_request(self, agent: str, top: int, token: str | None) -> tuple[str, str, dict[str, Any]]:
        """(method, path, options) of one page of the entity listing, from `token` on."""
        options: dict[str, Any] = {
            "params": {"fetchState": "true", "top": str(top)},
            "headers": {CONTINUATION_HEADER: token} if token else {},
        }
        return "GET", self._entities_path(agent), options

    @staticmethod
    def _read_page(response: httpx.Response, items: list[dict[str, Any]]) -> str | None:
        """Add one listing page's rows to `items`; return the continuation token (None on the last page)."""
        if response.status_code == 404:
            return None  # no entity of that name yet
        raise_for(response)
        body = json_body(response)
        if isinstance(body, list):
            items.extend(item for item in body if isinstance(item, dict))
        return response.headers.get(CONTINUATION_HEADER) or None

    # ---- orchestration instances (Durable HTTP API) -------------------------------------------

    @staticmethod
    def _instance_path(instance_id: str, *rest: str) -> str:
        if not instance_id:
            raise ClientError("an instance id must not be empty")
        return "/".join(
            [f"{DURABLE_PREFIX}/instances", *(quote(part, safe="") for part in (instance_id, *rest))]
        )

    @staticmethod
    def _start_request(orchestrator: str, input: Any, instance_id: str | None) -> tuple[str, dict[str, Any]]:
        if not orchestrator:
            raise ClientError("an orchestrator name must not be empty")
        path = f"{DURABLE_PREFIX}/orchestrators/{quote(orchestrator, safe='')}"
        if instance_id:
            path += f"/{quote(instance_id, safe='')}"
        return path, ({} if input is None else {"json": input})

    @staticmethod
    def _start_result(response: httpx.Response, orchestrator: str, instance_id: str | None) -> dict[str, Any]:
        if response.status_code == 404:
            raise ClientError(f"unknown orchestrator {orchestrator!r}: {error_text(response)}", status=404)
        if response.status_code == 409:
            raise ClientError(
                f"instance {instance_id!r} already exists and is not finished: {error_text(response)}",
                status=409,
            )
        raise_for(response)
        body = json_body(response)
        if not isinstance(body, dict) or not body.get("id"):
            raise ClientError("start: unexpected response body (no instance id)")
        return body

    @staticmethod
    def _status_params(history: bool) -> dict[str, str]:
        return {"showHistory": "true", "showHistoryOutput": "true"} if history else {}

    @staticmethod
    def _status_result(response: httpx.Response) -> dict[str, Any] | None:
        if response.status_code == 404:
            return None
        return json_object(response, "status")

    def _instances_request(
        self, statuses: list[str] | None, top: int, token: str | None, prefix: str | None
    ) -> tuple[str, str, dict[str, Any]]:
        params: dict[str, str] = {"top": str(top)}
        if statuses:
            params["runtimeStatus"] = ",".join(statuses)
        if prefix:
            params["instanceIdPrefix"] = prefix
        options = {"params": params, "headers": {CONTINUATION_HEADER: token} if token else {}}
        return "GET", f"{DURABLE_PREFIX}/instances/", options

    @staticmethod
    def _read_instances_page(response: httpx.Response, items: list[dict[str, Any]]) -> str | None:
        raise_for(response)
        body = json_body(response)
        if not isinstance(body, list):
            raise ClientError("instances: unexpected response body (not a JSON array)")
        items.extend(item for item in body if isinstance(item, dict))
        return response.headers.get(CONTINUATION_HEADER) or None

    @staticmethod
    def _action_result(response: httpx.Response, instance_id: str, action: str) -> None:
        """Raise-event / terminate / suspend / resume: 404 and 410 said in the user's terms."""
        if response.status_code == 404:
            raise ClientError(f"no instance {instance_id!r}", status=404)
        if response.status_code == 410:
            raise ClientError(f"cannot {action}: instance {instance_id!r} has already finished", status=410)
        raise_for(response)

    @staticmethod
    def _purge_result(response: httpx.Response, instance_id: str) -> int:
        if response.status_code == 404:
            raise ClientError(f"no instance {instance_id!r}", status=404)
        raise_for(response)
        body = json_body(response) if response.content else {}
        deleted = body.get("instancesDeleted") if isinstance(body, dict) else None
        return deleted if isinstance(deleted, int) else 1

    def _clock_result(self, response: httpx.Response) -> dict[str, Any]:
        """`/admin/clock`: a 404 means a host without one (func, Azure: real time only)."""
        if response.status_code == 404:
            raise ClientError(
                f"{self.base_url} has no /admin/clock: only the harness's local host has a clock to "
                "read or move (func and Azure run on real time)",
                status=404,
            )
        raise_for(response)
        return json_body(response)

    @staticmethod
    def _clock_body(advance: str | None, to: str | None) -> dict[str, str]:
        if (advance is None) == (to is None):
            raise ValueError("move the clock by `advance` or `to`, one of them")
        return {"advance": advance} if advance is not None else {"to": str(to)}


class AgentClient(_Requests):
    """Async client; creates its `httpx.AsyncClient` on first use so it binds to the running loop."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, key, timeout)
        self._transport = transport
        self._http: httpx.AsyncClient | None = None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (safe to call twice)."""
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, **self._client_options())
        try:
            return await self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise transport_error(self.base_url, exc) from None

    async def health(self) -> dict[str, Any]:
        """`GET /api/health`: the app's agents."""
        return self._health_result(await self._send("GET", "/api/health"))

    async def clock(self) -> dict[str, Any]:
        """`GET /admin/clock`: `{now, mode, next_due}` of the local host's clock."""
        return self._clock_result(await self._send("GET", "/admin/clock"))

    async def move_clock(self, advance: str | None = None, to: str | None = None) -> dict[str, Any]:
        """Move a virtual clock by an ISO-8601 duration (`advance="PT72H"`) or `to` a time; answers once
        what came due has run (no client timeout: a long advance runs every timer on the way)."""
        body = self._clock_body(advance, to)
        return self._clock_result(await self._send("POST", "/admin/clock", json=body, timeout=None))

    async def agents(self) -> list[str]:
        """Names of the agents the app hosts."""
        return agent_names(await self.health())

    async def run(self, agent: str, message: str, session_id: str | None = None) -> dict[str, Any]:
        """Run one turn. Returns the JSON reply, including a failed turn (`status: error`) or 202."""
        path, body = self._run_request(agent, message, session_id)
        response = await self._send("POST", path, json=body, timeout=max(self.timeout, RUN_TIMEOUT))
        return run_result(response)

    async def stream_run(
        self, agent: str, message: str, session_id: str | None = None
    ) -> AsyncIterator[ReplyEvent]:
        """Run one turn as Server-Sent Events: `accepted`, chunks as they come, `final` (the reply
        JSON); a dropped connection is resumed (`reply_stream.py`)."""
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, **self._client_options())
        path, body = self._run_request(agent, message, session_id)
        try:
            async for event in aiter_reply(self._http, path, body, max(self.timeout, RUN_TIMEOUT)):
                yield event
        except StreamBroken as exc:
            raise ClientError(str(exc)) from None

    async def state(self, agent: str, session_id: str) -> dict[str, Any] | None:
        """The stored state of a session, None when the session does not exist."""
        return self._state_result(await self._send("GET", self._state_path(agent, session_id)))

    async def sessions(self, agent: str, top: int = 50) -> list[SessionSummary]:
        """All sessions of an agent, newest first, following continuation tokens."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            method, path, options = self._page_request(agent, top, token)
            token = self._read_page(await self._send(method, path, **options), items)
            if token is None:
                return summarize(items)

    async def fork(self, agent: str, session_id: str, turn: int, to: str | None = None) -> dict[str, Any]:
        """Copy the session's first `turn` turns into a new session (`to`, else an id the app picks)."""
        path, body = self._fork_request(agent, session_id, turn, to)
        response = await self._send("POST", path, json=body, timeout=max(self.timeout, RUN_TIMEOUT))
        return self._fork_result(response)

    async def reset(self, agent: str, session_id: str) -> None:
        """Signal the entity's `reset` operation (asynchronous: the host answers 202)."""
        response = await self._send("POST", self._entities_path(agent, session_id), params={"op": "reset"})
        raise_for(response)

    # ---- orchestration instances --------------------------------------------------------------

    async def start(
        self, orchestrator: str, input: Any = None, instance_id: str | None = None
    ) -> dict[str, Any]:
        """Start an orchestration (input None: no body); returns the management URLs, `id` included."""
        path, options = self._start_request(orchestrator, input, instance_id)
        return self._start_result(await self._send("POST", path, **options), orchestrator, instance_id)

    async def instance(self, instance_id: str, history: bool = False) -> dict[str, Any] | None:
        """An instance's status (with `historyEvents` when `history`); None when unknown."""
        path = self._instance_path(instance_id)
        return self._status_result(await self._send("GET", path, params=self._status_params(history)))

    async def instances(
        self, statuses: list[str] | None = None, top: int = 100, prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """All instances (optionally of some runtime statuses), newest first, over every page."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            method, path, options = self._instances_request(statuses, top, token, prefix)
            token = self._read_instances_page(await self._send(method, path, **options), items)
            if token is None:
                return newest_first(items)

    async def raise_event(self, instance_id: str, event: str, data: Any = None) -> None:
        """Send an external event to a running instance (202: queued for it)."""
        if not event:
            raise ClientError("an event name must not be empty")
        path = self._instance_path(instance_id, "raiseEvent", event)
        response = await self._send("POST", path, json=data)
        self._action_result(response, instance_id, "raise an event")

    async def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """Terminate a running instance (202: asynchronous)."""
        params = {"reason": reason} if reason else {}
        response = await self._send("POST", self._instance_path(instance_id, "terminate"), params=params)
        self._action_result(response, instance_id, "terminate")

    async def purge(self, instance_id: str) -> int:
        """Delete an instance and its history; returns how many instances were deleted."""
        return self._purge_result(await self._send("DELETE", self._instance_path(instance_id)), instance_id)

    # ---- workflows (Microsoft's routes; harness/workflow_api.py) ---------------------------------

    async def workflow_status(self, name: str, instance_id: str) -> dict[str, Any] | None:
        """The status route's body (custom status, pending requests); None for an unknown instance."""
        path = workflow_api.instance_path(name, instance_id, "status")
        return workflow_api.status_result(await self._send("GET", path), name, instance_id)

    async def workflow_respond(
        self, name: str, instance_id: str, request_id: str, answer: Any
    ) -> dict[str, Any]:
        """Answer an open request of the instance (a 4xx is a one-line ClientError)."""
        path, options = workflow_api.respond_request(name, instance_id, request_id, answer)
        return workflow_api.respond_result(await self._send("POST", path, **options), name)

    async def workflow_events(
        self,
        name: str,
        instance_id: str,
        after: int | str = -1,
        seconds: float = workflow_api.STREAM_SECONDS,
    ) -> AsyncIterator[WorkflowEvent]:
        """The instance's events after `after` (a number or an event's `cursor`), as they happen, up
        to its `status` event."""
        if self._http is None:
            self._http = httpx.AsyncClient(transport=self._transport, **self._client_options())
        try:
            async for event in workflow_api.aiter_events(self._http, name, instance_id, after, seconds):
                yield event
        except httpx.HTTPError as exc:
            raise transport_error(self.base_url, exc) from None


class SyncAgentClient(_Requests):
    """Blocking client with the same methods, for the CLI and scripts."""

    def __init__(
        self,
        base_url: str = DEFAULT_URL,
        key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, key, timeout)
        self._http = httpx.Client(transport=transport, **self._client_options())

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection pool."""
        self._http.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise transport_error(self.base_url, exc) from None

    def health(self) -> dict[str, Any]:
        """`GET /api/health`: the app's agents."""
        return self._health_result(self._send("GET", "/api/health"))

    def clock(self) -> dict[str, Any]:
        """`GET /admin/clock`: `{now, mode, next_due}` of the local host's clock."""
        return self._clock_result(self._send("GET", "/admin/clock"))

    def move_clock(self, advance: str | None = None, to: str | None = None) -> dict[str, Any]:
        """Move a virtual clock by an ISO-8601 duration (`advance="PT72H"`) or `to` a time; answers once
        what came due has run (no client timeout: a long advance runs every timer on the way)."""
        body = self._clock_body(advance, to)
        return self._clock_result(self._send("POST", "/admin/clock", json=body, timeout=None))

    def agents(self) -> list[str]:
        """Names of the agents the app hosts."""
        return agent_names(self.health())

    def run(self, agent: str, message: str, session_id: str | None = None) -> dict[str, Any]:
        """Run one turn. Returns the JSON reply, including a failed turn (`status: error`) or 202."""
        path, body = self._run_request(agent, message, session_id)
        return run_result(self._send("POST", path, json=body, timeout=max(self.timeout, RUN_TIMEOUT)))

    def stream_run(self, agent: str, message: str, session_id: str | None = None) -> Iterator[ReplyEvent]:
        """Blocking `AgentClient.stream_run` (`ask` shows it with `harness.cli.ask.LivePrinter`)."""
        path, body = self._run_request(agent, message, session_id)
        try:
            yield from iter_reply(self._http, path, body, max(self.timeout, RUN_TIMEOUT))
        except StreamBroken as exc:
            raise ClientError(str(exc)) from None

    def state(self, agent: str, session_id: str) -> dict[str, Any] | None:
        """The stored state of a session, None when the session does not exist."""
        return self._state_result(self._send("GET", self._state_path(agent, session_id)))

    def sessions(self, agent: str, top: int = 50) -> list[SessionSummary]:
        """All sessions of an agent, newest first, following continuation tokens."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            method, path, options = self._page_request(agent, top, token)
            token = self._read_page(self._send(method, path, **options), items)
            if token is None:
                return summarize(items)

    def fork(self, agent: str, session_id: str, turn: int, to: str | None = None) -> dict[str, Any]:
        """Copy the session's first `turn` turns into a new session (`to`, else an id the app picks)."""
        path, body = self._fork_request(agent, session_id, turn, to)
        return self._fork_result(self._send("POST", path, json=body, timeout=max(self.timeout, RUN_TIMEOUT)))

    def reset(self, agent: str, session_id: str) -> None:
        """Signal the entity's `reset` operation (asynchronous: the host answers 202)."""
        raise_for(self._send("POST", self._entities_path(agent, session_id), params={"op": "reset"}))

    # ---- orchestration instances --------------------------------------------------------------

    def start(self, orchestrator: str, input: Any = None, instance_id: str | None = None) -> dict[str, Any]:
        """Start an orchestration (input None: no body); returns the management URLs, `id` included."""
        path, options = self._start_request(orchestrator, input, instance_id)
        return self._start_result(self._send("POST", path, **options), orchestrator, instance_id)

    def instance(self, instance_id: str, history: bool = False) -> dict[str, Any] | None:
        """An instance's status (with `historyEvents` when `history`); None when unknown."""
        path = self._instance_path(instance_id)
        return self._status_result(self._send("GET", path, params=self._status_params(history)))

    def instances(
        self, statuses: list[str] | None = None, top: int = 100, prefix: str | None = None
    ) -> list[dict[str, Any]]:
        """All instances (optionally of some runtime statuses), newest first, over every page."""
        items: list[dict[str, Any]] = []
        token: str | None = None
        while True:
            method, path, options = self._instances_request(statuses, top, token, prefix)
            token = self._read_instances_page(self._send(method, path, **options), items)
            if token is None:
                return newest_first(items)

    def raise_event(self, instance_id: str, event: str, data: Any = None) -> None:
        """Send an external event to a running instance (202: queued for it)."""
        if not event:
            raise ClientError("an event name must not be empty")
        response = self._send("POST", self._instance_path(instance_id, "raiseEvent", event), json=data)
        self._action_result(response, instance_id, "raise an event")

    def terminate(self, instance_id: str, reason: str | None = None) -> None:
        """Terminate a running instance (202: asynchronous)."""
        params = {"reason": reason} if reason else {}
        response = self._send("POST", self._instance_path(instance_id, "terminate"), params=params)
        self._action_result(response, instance_id, "terminate")

    def purge(self, instance_id: str) -> int:
        """Delete an instance and its history; returns how many instances were deleted."""
        return self._purge_result(self._send("DELETE", self._instance_path(instance_id)), instance_id)

    # ---- workflows (Microsoft's routes; harness/workflow_api.py) ---------------------------------

    def workflow_run(
        self, name: str, input: Any = None, run_id: str | None = None, wait: float | None = None
    ) -> dict[str, Any]:
        """Start workflow `name` (text input as text, else JSON): the 202 body with its links; with
        `wait` seconds, the 200 body once it finished (or the 202 body when it had not)."""
        method, path, options = workflow_api.run_request(name, input, run_id)
        if wait is not None:
            seconds = max(1, min(workflow_api.MAX_WAIT_SECONDS, round(wait)))
            options["params"] = {
                **options["params"],
                "waitForResponse": "true",
                "timeoutSeconds": str(seconds),
            }
            options["timeout"] = max(self.timeout, seconds + 30)
        return workflow_api.run_result(self._send(method, path, **options), name)

    def workflow_status(self, name: str, instance_id: str) -> dict[str, Any] | None:
        """The status route's body (custom status, pending requests); None for an unknown instance."""
        path = workflow_api.instance_path(name, instance_id, "status")
        return workflow_api.status_result(self._send("GET", path), name, instance_id)

    def workflow_of(self, instance_id: str) -> str:
        """The workflow an instance runs (its orchestrator is `dafx-{workflow}`); one-line
        ClientError for an unknown instance or one that is not a workflow's."""
        status = self.instance(instance_id)
        if status is None:
            raise ClientError(f"no instance {instance_id!r}", status=404)
        name = workflow_api.workflow_of(status)
        if name is None:
            raise ClientError(
                f"instance {instance_id!r} is not a workflow instance "
                f"(its orchestrator is {status.get('name')!r})"
            )
        if not workflow_api.is_top_level(status):
            parent = instance_id.split(workflow_api.SUB_SEPARATOR, 1)[0]
            raise ClientError(
                f"instance {instance_id!r} runs sub-workflow {name!r} inside instance {parent!r}; "
                "its requests and events are read through that one"
            )
        return name

    def workflow_respond(self, name: str, instance_id: str, request_id: str, answer: Any) -> dict[str, Any]:
        """Answer an open request of the instance (a 4xx is a one-line ClientError)."""
        path, options = workflow_api.respond_request(name, instance_id, request_id, answer)
        return workflow_api.respond_result(self._send("POST", path, **options), name)

    def workflow_events(
        self,
        name: str,
        instance_id: str,
        after: int | str = -1,
        seconds: float = workflow_api.STREAM_SECONDS,
        until: float | None = None,
    ) -> Iterator[WorkflowEvent]:
        """The instance's events after `after` (a number or an event's `cursor`), as they happen,
        up to its `status` event (or the `time.monotonic()` deadline `until`)."""
        try:
            yield from workflow_api.iter_events(self._http, name, instance_id, after, seconds, until)
        except httpx.HTTPError as exc:
            raise transport_error(self.base_url, exc) from None

    def wait(
        self,
        instance_id: str,
        until: Callable[[dict[str, Any]], bool] = is_finished,
        timeout: float = 60.0,
        interval: float = 0.2,
        history: bool = False,
        describe: str = "to finish",
    ) -> dict[str, Any]:
        """Poll the instance until `until(status)` holds; `InstanceTimeout` (with the last status) if late.

        An instance that finishes without meeting `until` ends the wait early with `InstanceTimeout`
        as well: it will not change any more.
        """
        deadline = time.monotonic() + timeout
        while True:
            status = self.instance(instance_id, history=history)
            if status is None:
                raise ClientError(f"no instance {instance_id!r}", status=404)
            if until(status):
                return status
            runtime = status.get("runtimeStatus")
            if is_finished(status) and until is not is_finished:
                raise InstanceTimeout(
                    f"instance {instance_id!r} ended {runtime} while waiting {describe}", status
                )
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise InstanceTimeout(
                    f"instance {instance_id!r} is still {runtime} after waiting {timeout:g} s {describe}",
                    status,
                )
            time.sleep(min(interval, remaining))


def agent_names(health: Any) -> list[str]:
    """Agent names from a `/api/health` body."""
    agents = health.get("agents") if isinstance(health, dict) else None
    names = []
    for agent in agents or []:
        name = agent.get("name") if isinstance(agent, dict) else agent
        if isinstance(name, str) and name:
            names.append(name)
    return names


def check_agent(agent: str, names: list[str]) -> str:
    """The app's spelling of `agent`; a one-line ClientError naming the available agents when unknown.

    Matching ignores case, like the app: Durable entity names are case-insensitive, so the app
    resolves `weatheragent` to `WeatherAgent`.
    """
    if agent in names:
        return agent
    wanted = agent.lower()
    for name in names:
        if name.lower() == wanted:
            return name
    available = ", ".join(names) if names else "none"
    raise ClientError(f"unknown agent {agent!r}; available agents: {available}")
