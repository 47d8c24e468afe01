"""The three HTTP routes of each hosted workflow, shaped as Microsoft's are (peer notes):
`POST workflow/{name}/run`, `GET workflow/{name}/status/{instanceId}`,
`POST workflow/{name}/respond/{instanceId}/{requestId}`.

Where Microsoft's package is silent or weak we answer a clear 4xx JSON body
(`{"status": "error", "error": ...}`) instead of a 500: a body that does not fit the start
executor's or the response's type (naming the type), an unknown request id (naming the open ones),
an instance of another workflow (404), a finished instance (409), a run id already in use (409).
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import azure.functions as func
from agent_framework import Workflow

from .._backend import is_backend_failure
from .._routes import bug_response, error_response, json_response, unavailable_response
from .._run_request import RequestError, decode_body, parse_flag, wants_events
from .._sse import EventStream, sse
from .._storage import LazyStore
from ..session import entity_name_for
from ..streams import StreamId, parse_event_id
from .codec import CodecError, _resolve, convert_input, encode, input_types_of, json_schema_of, type_name
from .events import OpenTurn, derive
from .orchestrator import SUB_SEPARATOR, function_name, scoped_agent_name, session_key_for

WAIT_HEADER = "x-ms-wait-for-response"
DEFAULT_TIMEOUT_SECONDS = 10
MAX_TIMEOUT_SECONDS = 200
_RUN_ID_BAD = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")
MARKERS = ("$type", "$value", "$dict", "__pickled__", "__type__")


def check_run_id(run_id: str) -> str:
    """Microsoft's rules for a caller-chosen instance id."""
    if not 1 <= len(run_id) <= 100:
        raise RequestError("runId must be 1 to 100 characters")
    if run_id.startswith("@"):
        raise RequestError("runId must not start with '@'")
    bad = _RUN_ID_BAD.search(run_id)
    if bad:
        raise RequestError(
            f"runId must not contain {bad.group()!r} ('/', '\\\\', '#', '?' or control characters)"
        )
    return run_id


def _timeout(raw: str | None) -> int:
    if raw is None:
        return DEFAULT_TIMEOUT_SECONDS
    try:
        value = int(raw)
    except ValueError:
        raise RequestError(f"timeoutSeconds must be a whole number of seconds, got {raw!r}") from None
    if not 1 <= value <= MAX_TIMEOUT_SECONDS:
        raise RequestError(f"timeoutSeconds must be between 1 and {MAX_TIMEOUT_SECONDS}, got {value}")
    return value


def strip_markers(value: Any) -> Any:
    """An untrusted body without keys a serializer could read as type markers."""
    if isinstance(value, dict):
        return {k: strip_markers(v) for k, v in value.items() if k not in MARKERS}
    if isinstance(value, list):
        return [strip_markers(v) for v in value]
    return value


def body_value(req: func.HttpRequest) -> Any:
    """A JSON body as data (when sent as JSON, or when text parses as JSON), otherwise its text."""
    text = decode_body(req.get_body() or b"")
    content_type = (req.headers.get("content-type") or "").split(";", 1)[0].strip().lower()
    is_json = content_type == "application/json" or content_type.endswith("+json")
    if is_json:
        if not text.strip():
            raise RequestError("request body is empty")
        try:
            return strip_markers(json.loads(text))
        except ValueError as exc:
            raise RequestError(f"request body is not valid JSON: {exc}") from None
    return text


DEFAULT_STREAM_SECONDS = 60
"""How long one event-stream response follows an instance that has not ended; a client
reconnects with `Last-Event-ID` (an `EventSource` does so by itself) and misses nothing."""


@dataclass(frozen=True)
class Cursor:
    """Where an event stream resumes: after event `after`, and for a chunk id (`N:M:A.S`, an
    agent's text while its executor `M` runs) after stream row `A.S` of that executor's turn."""

    after: int = -1
    executor: int | None = None
    row: str | None = None


def _cursor(req: func.HttpRequest) -> Cursor:
    raw = req.headers.get("last-event-id") or req.params.get("cursor")
    if raw in (None, ""):
        return Cursor()
    problem = f"Last-Event-ID must be an event id of this stream (N, or N:M:A.S), got {raw[:64]!r}"
    parts = raw.strip().split(":")
    try:
        after = int(parts[0])
        if after < -1 or len(parts) not in (1, 3):
            raise ValueError(problem)
        if len(parts) == 1:
            return Cursor(after)
        return Cursor(after, int(parts[1]), parse_event_id(parts[2]))
    except ValueError:
        raise RequestError(problem) from None


def _stream_seconds(req: func.HttpRequest) -> float:
    raw = req.params.get("timeoutSeconds")
    return DEFAULT_STREAM_SECONDS if raw is None else _timeout(raw)


def status_json(status: Any) -> dict[str, Any]:
    """The Durable HTTP API's shape of a status read through the SDK client (`events.derive` input)."""
    runtime = status.runtime_status.value if status.runtime_status is not None else None
    return {
        "instanceId": status.instance_id,
        "runtimeStatus": runtime,
        "customStatus": status.custom_status,
        "output": status.output,
        "historyEvents": getattr(status, "historyEvents", None) or status.history or [],
    }


async def follow(
    client: Any, streams: LazyStore | None, name: str, instance_id: str, cursor: Cursor, seconds: float
) -> AsyncIterator[str]:
    """The instance's events after `cursor`, as they appear, until it ends or `seconds` pass.

    Between them, the text of agent executors whose turn is running (`agent_update`, id
    `N:M:A.S`: N the last event sent, M the executor's `executor_invoked`, A.S the reply stream's
    row). A resumed stream continues the chunks of the executor its id names; chunks another
    running agent streamed meanwhile are skipped (its `executor_completed` carries the whole reply)."""
    deadline = time.monotonic() + seconds
    interval = 0.05
    after = cursor.after
    rows: dict[int, str | None] = {}
    if cursor.executor is not None:
        rows[cursor.executor] = cursor.row
    store = streams.get() if streams is not None else None
    skip_to_latest = cursor.executor is not None
    following: list[OpenTurn] = []

    async def chunks(turns: list[OpenTurn]) -> AsyncIterator[str]:
        assert store is not None
        for turn in turns:
            stream = StreamId(
                entity_name_for(scoped_agent_name(name, turn.executor)),
                session_key_for(instance_id),
                turn.correlation_id,
            )
            fresh = await store.read(stream, rows.get(turn.number))
            if fresh:
                rows[turn.number] = fresh[-1].row_key
            if skip_to_latest and turn.number != cursor.executor:
                continue
            for row in fresh:
                if row.kind in ("text", "tool_call", "tool_result"):
                    data = {"executor": turn.executor, "kind": row.kind, **row.data}
                    yield sse("agent_update", data, f"{after}:{turn.number}:{row.event_id}")

    while True:
        status = await client.get_status(instance_id, show_history=True, show_history_output=True)
        open_turns: list[OpenTurn] = []
        events = derive(name, status_json(status), open_turns)
        if store is not None:
            # turns that ended since the last read: their last chunks come before their completion
            still = {turn.number for turn in open_turns}
            async for chunk in chunks([turn for turn in following if turn.number not in still]):
                yield chunk
            following = open_turns
        for number in range(after + 1, len(events)):
            kind, data = events[number]
            yield sse(kind, data, str(number))
        after = max(after, len(events) - 1)
        if (events and events[-1][0] == "status") or time.monotonic() + interval > deadline:
            return
        if store is not None:
            async for chunk in chunks(open_turns):
                yield chunk
            skip_to_latest = False
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, 1.0)


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


class WorkflowRoutes:
    """Route logic for one app's workflows; `lookup` maps a route's name to a registered workflow."""

    def __init__(
        self, lookup: Callable[[str], tuple[str, Workflow] | None], streams: LazyStore | None = None
    ) -> None:
        self._lookup = lookup
        self._streams = streams

    def _workflow(self, name: str) -> tuple[str, Workflow]:
        found = self._lookup(name)
        if found is None:  # a route is only registered for a registered workflow
            raise RequestError(f"unknown workflow {name!r}", 404)
        return found

    @staticmethod
    def _base(req: func.HttpRequest, name: str) -> str:
        url = req.url.split("?", 1)[0]
        marker = f"/workflow/{name}/"
        index = url.lower().find(marker.lower())
        return url[:index] + f"/workflow/{name}" if index >= 0 else url.rsplit("/", 2)[0]

    def _links(self, req: func.HttpRequest, name: str, instance_id: str) -> dict[str, str]:
        base = self._base(req, name)
        return {
            "statusQueryGetUri": f"{base}/status/{instance_id}",
            "respondUri": f"{base}/respond/{instance_id}/{{requestId}}",
        }

    # -- run ---------------------------------------------------------------------------------------
    async def run(self, req: func.HttpRequest, client: Any, workflow: str) -> func.HttpResponse | EventStream:
        try:
            name, definition = self._workflow(workflow)
            run_id = req.params.get("runId")
            instance_id = check_run_id(run_id) if run_id is not None else None
            header = req.headers.get(WAIT_HEADER)
            query = req.params.get("waitForResponse")
            wait = (
                parse_flag(header, f"header {WAIT_HEADER}")
                if header is not None
                else (parse_flag(query, "query parameter 'waitForResponse'") if query is not None else False)
            )
            timeout = _timeout(req.params.get("timeoutSeconds"))
            start = definition.get_start_executor()
            try:
                value = convert_input(body_value(req), input_types_of(list(start.input_types)))
            except CodecError as exc:
                raise RequestError(f"body does not fit the start executor {start.id!r}: {exc}") from None
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        try:
            if instance_id is not None:
                existing = await client.get_status(instance_id)
                if existing.runtime_status is not None and existing.runtime_status.value not in TERMINAL:
                    return error_response(
                        f"instance {instance_id!r} is already {existing.runtime_status.value}; "
                        "choose another runId",
                        409,
                    )
            instance_id = await client.start_new(function_name(name), instance_id, {"input": encode(value)})
            if wants_events(req.headers.get("accept")):
                headers = {"Cache-Control": "no-cache", "x-ms-instance-id": instance_id}
                return EventStream(
                    follow(client, self._streams, name, instance_id, Cursor(), _stream_seconds(req)), headers
                )
            if wait:
                finished = await self._wait(client, instance_id, timeout)
                if finished is not None:
                    body = {
                        "instanceId": instance_id,
                        "runtimeStatus": finished.runtime_status.value,
                        "output": finished.output,
                    }
                    if finished.runtime_status.value == "Failed":
                        body["error"] = finished.output
                    return json_response(body, 200)
        except Exception as exc:
            if is_backend_failure(exc):
                return unavailable_response(exc)
            return bug_response(exc, f"starting workflow {name!r}")
        return json_response(
            {"instanceId": instance_id, **self._links(req, name, instance_id), "message": "Workflow started"},
            202,
        )

    @staticmethod
    async def _wait(client: Any, instance_id: str, timeout: float) -> Any:
        deadline = time.monotonic() + timeout
        interval = 0.02
        while True:
            status = await client.get_status(instance_id)
            if status.runtime_status is not None and status.runtime_status.value in TERMINAL:
                return status
            if time.monotonic() + interval > deadline:
                return None
            await asyncio.sleep(interval)
            interval = min(interval * 1.5, 0.5)

    # -- status ------------------------------------------------------------------------------------
    async def _instance(self, client: Any, name: str, instance_id: str) -> Any:
        status = await client.get_status(instance_id)
        if status.runtime_status is None or (status.name or "").lower() != function_name(name).lower():
            raise RequestError(f"no instance {instance_id!r} of workflow {name!r}", 404)
        return status

    async def _pending(
        self, client: Any, req: func.HttpRequest, name: str, status: Any
    ) -> list[dict[str, Any]]:
        """Open requests of the instance and (qualified) of its running sub-workflows."""
        custom = status.custom_status if isinstance(status.custom_status, dict) else {}
        if status.runtime_status.value in TERMINAL:
            return []
        found: list[dict[str, Any]] = []
        for record in custom.get("pendingRequests") or []:
            found.append({**record, "requestId": record["requestId"]})
        for child_id in custom.get("subWorkflows") or []:
            child = await client.get_status(child_id)
            if child.runtime_status is None:
                continue
            prefix = child_id[len(status.instance_id) + 1 :]
            for record in await self._pending(client, req, name, child):
                found.append({**record, "requestId": f"{prefix}{SUB_SEPARATOR}{record['requestId']}"})
        return found

    async def status(
        self, req: func.HttpRequest, client: Any, workflow: str
    ) -> func.HttpResponse | EventStream:
        try:
            name, _ = self._workflow(workflow)
            instance_id = req.route_params.get("instance_id", "")
            status = await self._instance(client, name, instance_id)
            if wants_events(req.headers.get("accept")):
                cursor, seconds = _cursor(req), _stream_seconds(req)
                return EventStream(
                    follow(client, self._streams, name, instance_id, cursor, seconds),
                    {"Cache-Control": "no-cache"},
                )
            pending = await self._pending(client, req, name, status)
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        except Exception as exc:
            if is_backend_failure(exc):
                return unavailable_response(exc)
            return bug_response(exc, "reading a workflow instance")
        runtime = status.runtime_status.value
        base = self._base(req, name)
        shown = []
        for record in pending:
            response_type = _try_resolve(record.get("responseType"))
            shown.append(
                {
                    "requestId": record["requestId"],
                    "sourceExecutor": record.get("sourceExecutor"),
                    "requestData": record.get("requestData"),
                    "requestType": _short(record.get("requestType")),
                    "responseType": _short(record.get("responseType")),
                    "responseSchema": json_schema_of(response_type) if response_type else None,
                    "respondUrl": f"{base}/respond/{instance_id}/{record['requestId']}",
                }
            )
        return json_response(
            {
                "instanceId": instance_id,
                "runtimeStatus": runtime,
                "customStatus": status.custom_status,
                "output": status.output if runtime != "Failed" else None,
                "error": status.output if runtime == "Failed" else None,
                "createdTime": _iso(status.created_time),
                "lastUpdatedTime": _iso(status.last_updated_time),
                "pendingHumanInputRequests": shown,
            }
        )

    # -- respond -----------------------------------------------------------------------------------
    async def respond(self, req: func.HttpRequest, client: Any, workflow: str) -> func.HttpResponse:
        try:
            name, _ = self._workflow(workflow)
            instance_id = req.route_params.get("instance_id", "")
            request_id = req.route_params.get("request_id", "")
            text = decode_body(req.get_body() or b"")
            if not text.strip():
                raise RequestError(
                    'request body is empty; send the response as JSON, e.g. {"approved": true}'
                )
            try:
                answer = strip_markers(json.loads(text))
            except ValueError as exc:
                raise RequestError(f"request body is not valid JSON: {exc}") from None
            status = await self._instance(client, name, instance_id)
            if status.runtime_status.value in TERMINAL:
                raise RequestError(
                    f"instance {instance_id!r} is {status.runtime_status.value}; nothing to respond to", 409
                )
            pending = {r["requestId"]: r for r in await self._pending(client, req, name, status)}
            record = pending.get(request_id)
            if record is None:
                open_ids = ", ".join(pending) or "none"
                raise RequestError(
                    f"no open request {request_id!r} on instance {instance_id!r}; open: {open_ids}", 404
                )
            response_type = _try_resolve(record.get("responseType"))
            if response_type is not None:
                try:
                    convert_input(answer, [response_type])
                except CodecError as exc:
                    raise RequestError(f"body does not fit {type_name(response_type)}: {exc}") from None
            target, bare = instance_id, request_id
            if SUB_SEPARATOR in request_id:
                path, bare = request_id.rsplit(SUB_SEPARATOR, 1)
                target = f"{instance_id}{SUB_SEPARATOR}{path}"
            await client.raise_event(target, bare, answer)
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        except Exception as exc:
            if is_backend_failure(exc):
                return unavailable_response(exc)
            return bug_response(exc, "delivering a workflow response")
        return json_response(
            {"message": "Response delivered successfully", "instanceId": instance_id, "requestId": request_id}
        )


def _try_resolve(key: Any) -> type | None:
    try:
        return _resolve(key)
    except CodecError:
        return None


def _short(key: Any) -> Any:
    return key.split(":", 1)[1] if isinstance(key, str) and ":" in key else key
