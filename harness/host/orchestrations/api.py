"""The Durable extension's HTTP API for orchestration instances, under `/runtime/webhooks/durabletask/`.

Same paths, query parameters and shapes as the real extension, so `DurableOrchestrationClient`
(`start_new`, `get_status*`, `raise_event`, `terminate`, `suspend`, `resume`, `purge_*`) and the URLs
of a check-status response work unchanged. Every error is a 4xx/503 JSON body (and a start that
waits for its instance's end answers a Failed one with 500 and its status, as the extension does).

Payloads: the Python client posts start inputs and event data as the JSON text of the value encoded
once more (a JSON string); a hand-made request posts the value itself. A JSON string body that holds
JSON text is taken as the former, anything else as the latter, so both give the orchestrator the value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from ..api import any_segment, page_after, page_headers
from ..responses import json_error, json_response
from . import history as h
from .engine import InstanceExists, OrchestrationEngine
from .rewind import RewindRefused, rewind
from .store import MAX_ID, RUNTIME_STATUSES, TERMINAL, InstanceFilter, InstanceRecord, invalid_instance_id

log = logging.getLogger(__name__)

MAX_INPUT = 1024 * 1024
MAX_TOP = 1000
MAX_WAIT = 3600  # seconds a start with `timeout` may wait for the end
DEFAULT_POLLING = "1"  # seconds: how long a wait goes without a look at storage, woken or not
MIN_POLLING = 0.05
# Without `top`, a listing answers every match in one page (the Python client's get_status_all and
# get_status_by do not follow continuation tokens), up to this many.
UNPAGED_LIMIT = 10_000


def payload_text(token: Any) -> str:
    """The JSON text an orchestrator receives for a posted token (see the module docstring)."""
    if isinstance(token, str):
        try:
            strict_loads(token)
        except RecursionError:
            raise _BadRequest("request body holds JSON nested too deeply") from None
        except ValueError:
            return json.dumps(token)
        return token
    return json.dumps(token)


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def strict_loads(text: str | bytes) -> Any:
    """`json.loads` without NaN and Infinity, which no other JSON reader accepts."""
    value = json.loads(text, parse_constant=_no_constant)
    if _has_infinity(value):
        raise ValueError("numbers out of range are not JSON")
    return value


def _has_infinity(value: Any) -> bool:
    if isinstance(value, float):
        return value != value or value in (float("inf"), float("-inf"))
    if isinstance(value, list):
        return any(_has_infinity(v) for v in value)
    if isinstance(value, dict):
        return any(_has_infinity(v) for v in value.values())
    return False


def _time(stamp: datetime | None) -> str | None:
    if stamp is None:
        return None
    return stamp.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def status_json(record: InstanceRecord, show_input: bool = True) -> dict[str, Any]:
    """The status object the extension serves."""
    return {
        "name": record.name,
        "instanceId": record.instance_id,
        "runtimeStatus": record.status,
        "input": h.json_or_text(record.input) if show_input else None,
        "customStatus": h.json_or_text(record.custom_status),
        "output": h.json_or_text(record.output),
        "createdTime": _time(record.created),
        "lastUpdatedTime": _time(record.updated),
    }


def _flag(request: web.Request, name: str, default: bool) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise _BadRequest(f"{name} must be true or false")
    return value.lower() == "true"


class _BadRequest(Exception):
    """A request the API answers with 400 and this message."""


class InstanceApi:
    """Instance endpoints; `links(instance_id, request)` gives the management URLs of one instance."""

    def __init__(
        self, engine: OrchestrationEngine, links: Callable[[str, web.Request], dict[str, str]]
    ) -> None:
        self.engine = engine
        self.store = engine.store
        self.links = links

    def add_routes(self, app: web.Application, base: str, wrap: Callable[[Any], Any]) -> None:
        """Register the instance routes under `base` with the Durable API's guard `wrap`."""
        for path, method, handler in (
            ("/orchestrators/{name}", "POST", self.start),
            ("/orchestrators/{name}/{instance}", "POST", self.start),
            ("/instances", "GET", self.list_instances),
            ("/instances/", "GET", self.list_instances),
            ("/instances", "DELETE", self.purge_by),
            ("/instances/", "DELETE", self.purge_by),
            ("/instances/{instance}", "GET", self.status),
            ("/instances/{instance}", "DELETE", self.purge),
            ("/instances/{instance}/raiseEvent/{event}", "POST", self.raise_event),
            ("/instances/{instance}/terminate", "POST", self.terminate),
            ("/instances/{instance}/suspend", "POST", self.suspend),
            ("/instances/{instance}/resume", "POST", self.resume),
            ("/instances/{instance}/rewind", "POST", self.rewind),
            ("/instances/{instance}/restart", "POST", self.restart),
        ):
            app.router.add_route(method, base + any_segment(path), wrap(self._errors_as_json(handler)))

    @staticmethod
    def _errors_as_json(handler: Callable[[web.Request], Any]) -> Callable[[web.Request], Any]:
        async def run(request: web.Request) -> web.StreamResponse:
            try:
                return await handler(request)
            except _BadRequest as exc:
                return json_error(400, str(exc))

        return run

    # -- helpers ---------------------------------------------------------------------------------
    async def _body(self, request: web.Request) -> tuple[bool, Any]:
        """(present, token) of a JSON body; _BadRequest/413 for bodies that are not."""
        if request.content_length is not None and request.content_length > MAX_INPUT:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_INPUT, actual_size=request.content_length)
        raw = await request.read()
        if len(raw) > MAX_INPUT:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_INPUT, actual_size=len(raw))
        if not raw.strip():
            return False, None
        try:
            return True, strict_loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            raise _BadRequest("request body is not valid UTF-8") from None
        except RecursionError:
            raise _BadRequest("request body is nested too deeply") from None
        except ValueError as exc:
            raise _BadRequest(f"request body is not valid JSON: {exc}") from None

    def _instance_id(self, request: web.Request) -> str:
        iid = request.match_info["instance"]
        problem = invalid_instance_id(iid)
        if problem:
            raise _BadRequest(problem)
        return iid

    async def _existing(self, request: web.Request) -> InstanceRecord | web.Response:
        iid = self._instance_id(request)
        record = await self.store.read(iid)
        if record is None:
            return json_error(404, f"no instance with id {iid!r}")
        return record

    def _accepted(self, iid: str, request: web.Request) -> web.Response:
        links = self.links(iid, request)
        return json_response(links, status=202, headers={"Location": links["statusQueryGetUri"]})

    # -- handlers --------------------------------------------------------------------------------
    async def start(self, request: web.Request) -> web.StreamResponse:
        """Start an orchestration; 202 with its management URLs."""
        name = request.match_info["name"]
        if self.engine.orchestrator(name) is None:
            known = sorted({f.name for f in self.engine.orchestrators.values()})
            return json_error(404, f"no orchestrator function named {name!r} (this app has: {known})")
        iid = self._instance_id(request) if "instance" in request.match_info else _new_id()
        try:
            present, token = await self._body(request)
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, f"input larger than {MAX_INPUT} bytes")
        wait = _wait_options(request)
        try:
            await self.engine.start(name, iid, payload_text(token) if present else None)
        except InstanceExists as exc:
            return json_error(409, str(exc))
        if wait is not None:
            return await self._wait_for_end(iid, request, *wait)
        return self._accepted(iid, request)

    async def _wait_for_end(
        self, iid: str, request: web.Request, timeout: float, interval: float
    ) -> web.StreamResponse:
        """Wait up to `timeout` seconds for the instance to finish, as the extension's start with
        `timeout` does: its output (200) when Completed, its status when Terminated (200) or Failed
        (500), else the 202 check-status response. Woken by each commit of the instance (not by
        polling storage); `interval` bounds each wait all the same. Real seconds (the loop's clock,
        not the host's `Clock`): they bound how long the caller's HTTP request is held."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            with self.store.changes.watch(iid) as changed:
                record = await self.store.read(iid)
                if record is not None and record.terminal:
                    if record.status == "Completed":
                        return web.Response(
                            status=200, text=record.output or "null", content_type="application/json"
                        )
                    return json_response(
                        status_json(record), status=200 if record.status == "Terminated" else 500
                    )
                remaining = deadline - loop.time()
                if record is None or remaining <= 0:
                    return self._accepted(iid, request)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(changed.wait(), min(remaining, interval))

    async def status(self, request: web.Request) -> web.StreamResponse:
        """One instance's status (with its history on request); 404 when unknown."""
        record = await self._existing(request)
        if isinstance(record, web.Response):
            return record
        show_history = _flag(request, "showHistory", False)
        show_output = _flag(request, "showHistoryOutput", False)
        show_input = _flag(request, "showInput", True)
        body = status_json(record, show_input)
        if show_history:
            body["historyEvents"] = h.public_history(record.history, show_output, show_input)
        code = 200 if record.terminal else 202
        headers = None
        if code == 202:
            headers = {"Location": str(request.url), "Retry-After": "5"}
        return json_response(body, status=code, headers=headers)

    async def list_instances(self, request: web.Request) -> web.StreamResponse:
        """A page of instances matching the filters; `x-ms-continuation-token` when more remain."""
        statuses, created_from, created_to = self._filters(request)
        top_text = request.query.get("top", str(UNPAGED_LIMIT))
        try:
            top = int(top_text)
        except ValueError:
            raise _BadRequest("top must be an integer") from None
        if not 1 <= top <= MAX_TOP and top != UNPAGED_LIMIT:
            raise _BadRequest(f"top must be between 1 and {MAX_TOP}")
        prefix = request.query.get("instanceIdPrefix") or None
        try:
            after = page_after(request)
        except ValueError as exc:
            raise _BadRequest(str(exc)) from None
        records, last = await self.store.list(
            InstanceFilter(statuses, created_from, created_to, prefix), top, after
        )
        show_input = _flag(request, "showInput", False)
        return json_response([status_json(r, show_input) for r in records], headers=page_headers(last))

    def _filters(self, request: web.Request) -> tuple[set[str] | None, datetime | None, datetime | None]:
        statuses: set[str] | None = None
        if request.query.get("runtimeStatus"):
            names = {s.strip() for s in request.query["runtimeStatus"].split(",") if s.strip()}
            lookup = {s.lower(): s for s in RUNTIME_STATUSES}
            unknown = sorted(n for n in names if n.lower() not in lookup)
            if unknown:
                raise _BadRequest(f"unknown runtimeStatus {unknown}; use {list(RUNTIME_STATUSES)}")
            statuses = {lookup[n.lower()] for n in names}
        times = []
        for key in ("createdTimeFrom", "createdTimeTo"):
            text = request.query.get(key)
            try:
                times.append(h.parse_time(text).astimezone(UTC) if text else None)
            except (ValueError, OverflowError):
                raise _BadRequest(f"{key} must be an ISO-8601 time, e.g. 2026-01-01T00:00:00Z") from None
        return statuses, times[0], times[1]

    async def raise_event(self, request: web.Request) -> web.StreamResponse:
        """Deliver an external event; 410 when the instance has finished."""
        record = await self._existing(request)
        if isinstance(record, web.Response):
            return record
        name = request.match_info["event"]
        if not name.strip() or len(name) > MAX_ID:
            return json_error(400, f"event name must be 1 to {MAX_ID} characters")
        try:
            present, token = await self._body(request)
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, f"event data larger than {MAX_INPUT} bytes")
        if record.terminal:
            return json_error(410, f"instance {record.instance_id!r} is {record.status}")
        await self.engine.raise_event(record.instance_id, name, payload_text(token) if present else None)
        return web.Response(status=202)

    async def _control(self, request: web.Request, kind: int) -> web.StreamResponse:
        record = await self._existing(request)
        if isinstance(record, web.Response):
            return record
        if record.terminal:
            return json_error(410, f"instance {record.instance_id!r} is {record.status}")
        reason = request.query.get("reason")
        if reason is not None and len(reason) > 4096:
            return json_error(400, "reason must be at most 4096 characters")
        await self.engine.control(record.instance_id, kind, reason)
        return web.Response(status=202)

    async def terminate(self, request: web.Request) -> web.StreamResponse:
        """Terminate a running instance (its output becomes the reason)."""
        return await self._control(request, h.EXECUTION_TERMINATED)

    async def suspend(self, request: web.Request) -> web.StreamResponse:
        """Suspend: messages wait until it is resumed."""
        return await self._control(request, h.EXECUTION_SUSPENDED)

    async def resume(self, request: web.Request) -> web.StreamResponse:
        """Resume a suspended instance."""
        return await self._control(request, h.EXECUTION_RESUMED)

    async def restart(self, request: web.Request) -> web.StreamResponse:
        """Start the instance's orchestrator again with its input, under a new id unless told not to."""
        record = await self._existing(request)
        if isinstance(record, web.Response):
            return record
        if self.engine.orchestrator(record.name) is None:  # the app no longer defines it
            return json_error(
                404,
                f"orchestrator function {record.name!r} of instance {record.instance_id!r} is not "
                "defined by this app",
            )
        new_id = _flag(request, "restartWithNewInstanceId", True)
        iid = _new_id() if new_id else record.instance_id
        try:
            await self.engine.start(record.name, iid, record.input)
        except InstanceExists as exc:
            return json_error(409, str(exc))
        return self._accepted(iid, request)

    async def purge(self, request: web.Request) -> web.StreamResponse:
        """Delete one instance's history; 404 when there is none."""
        iid = self._instance_id(request)
        if not await self.engine.purge(iid):
            return json_error(404, f"no instance with id {iid!r}")
        return json_response({"instancesDeleted": 1})

    async def purge_by(self, request: web.Request) -> web.StreamResponse:
        """Delete the instances created in a time range (finished ones unless `runtimeStatus` says)."""
        statuses, created_from, created_to = self._filters(request)
        if created_from is None:
            raise _BadRequest("createdTimeFrom is required to purge by filter")
        deleted = 0
        after: str | None = None
        while True:
            where = InstanceFilter(statuses or set(TERMINAL), created_from, created_to)
            page, after = await self.store.matching_ids(where, MAX_TOP, after)
            deleted += await self.engine.purge_many(page)
            if after is None:
                break
        if deleted == 0:
            return json_error(404, "no instances matched")
        return json_response({"instancesDeleted": deleted})

    async def rewind(self, request: web.Request) -> web.StreamResponse:
        """Rewind a finished instance (`rewind.py`): a Failed one to before the episode that failed, as
        the extension does, or any finished one to before history event `toEvent` (a local host
        extension); it then runs on with the current code. 202 with its management URLs."""
        iid = self._instance_id(request)
        text = request.query.get("toEvent")
        to_event: int | None = None
        if text is not None:
            try:
                to_event = int(text)
            except ValueError:
                raise _BadRequest(f"toEvent must be a history event index, not {text!r}") from None
        try:
            await rewind(self.engine, iid, to_event)
        except RewindRefused as exc:
            return json_error(exc.status, str(exc))
        return self._accepted(iid, request)


def _wait_options(request: web.Request) -> tuple[float, float] | None:
    """(timeout, pollingInterval) in seconds of a start that waits for the end; None when it does not
    wait. _BadRequest names a value that is not a number of seconds in range."""
    if "timeout" not in request.query:
        return None
    values = []
    for name, default in (("timeout", None), ("pollingInterval", DEFAULT_POLLING)):
        text = request.query.get(name, default)
        try:
            value = float(text) if text is not None else math.nan
        except ValueError:
            value = math.nan
        if not 0 <= value <= MAX_WAIT:  # also refuses NaN
            raise _BadRequest(f"{name} must be a number of seconds from 0 to {MAX_WAIT}, not {text!r}")
        values.append(value)
    return values[0], max(values[1], MIN_POLLING)


def _new_id() -> str:
    return uuid.uuid4().hex
