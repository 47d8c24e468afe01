"""Serve the app's HTTP triggers: match the route, build `func.HttpRequest`, call, convert the result.

Async functions run on the host's single event loop (the Durable SDK keeps one aiohttp session bound to
the first loop that used it); sync functions run in the thread pool so they cannot block the loop.
A function that runs longer than functionTimeout gets a 500 JSON reply naming the timeout (Azure
answers a timed-out function with a 500 too); its sync code runs on in its thread, which no longer
counts against the pool (see `workers.DaemonThreadPool`). A streamed body gets what is left of the
timeout, then the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import types
import uuid
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

import azure.functions as func
from aiohttp import web

from ..api import KeyPolicy
from ..loader import AppIndex, HttpFunction
from ..responses import json_error
from ..workers import FunctionTimeoutError, within
from .asgi import asgi_request, is_asgi_response, send
from .outputs import OutputWriter

log = logging.getLogger(__name__)

MAX_HTTP_BODY = 100 * 1024 * 1024  # the Functions host's default request size limit


class InvocationContext(func.Context):
    """What a function receives as `context` (invocation id, function name and directory)."""

    def __init__(self, function_name: str, function_directory: str, traceparent: str = "") -> None:
        self._invocation_id = str(uuid.uuid4())
        self._function_name = function_name
        self._function_directory = function_directory
        self._tls = threading.local()
        self._trace = types.SimpleNamespace(trace_parent=traceparent, trace_state="", attributes={})
        self._retry = types.SimpleNamespace(retry_count=0, max_retry_count=0, exception=None)

    @property
    def invocation_id(self) -> str:
        """Unique per call, like the Functions host's."""
        return self._invocation_id

    @property
    def thread_local_storage(self) -> Any:
        """Per-invocation scratch space (the worker uses it for logging correlation)."""
        return self._tls

    @property
    def function_name(self) -> str:
        """The function's registered name."""
        return self._function_name

    @property
    def function_directory(self) -> str:
        """The app directory."""
        return self._function_directory

    @property
    def trace_context(self) -> Any:
        """W3C trace context taken from the request's `traceparent` header."""
        return self._trace

    @property
    def retry_context(self) -> Any:
        """HTTP triggers are never retried."""
        return self._retry


def _headers(request: web.Request) -> dict[str, str]:
    """Collapse repeated headers into one comma-separated value, like the Functions host."""
    out: dict[str, str] = {}
    for name in request.headers:
        if name not in out:
            out[name] = ", ".join(request.headers.getall(name))
    return out


def _to_response(result: Any) -> web.StreamResponse:
    """Convert what a function returned into an aiohttp response."""
    if isinstance(result, web.StreamResponse):
        return result
    if isinstance(result, func.HttpResponse):
        headers = {k: v for k, v in result.headers.items()}
        if not any(k.lower() == "content-type" for k in headers):
            mimetype = result.mimetype or "text/plain"
            charset = result.charset or "utf-8"
            headers["Content-Type"] = (
                f"{mimetype}; charset={charset}"
                if mimetype.startswith("text/") or (mimetype == "application/json")
                else mimetype
            )
        return web.Response(status=result.status_code, body=result.get_body() or b"", headers=headers)
    if result is None:
        return web.Response(status=204)
    if isinstance(result, str):
        return web.Response(text=result, content_type="text/plain", charset="utf-8")
    if isinstance(result, bytes | bytearray):
        return web.Response(body=bytes(result), content_type="application/octet-stream")
    return web.Response(text=json.dumps(result), content_type="application/json", charset="utf-8")


class FunctionServer:
    """Dispatches requests under the route prefix to the app's HTTP functions."""

    def __init__(
        self,
        index: AppIndex,
        route_prefix: str,
        executor: Executor,
        client_binding: Callable[[], str],
        keys: KeyPolicy,
        app_dir: str,
        outputs: OutputWriter,
        timeout: float | None = None,
    ) -> None:
        """`timeout`: host.json's functionTimeout in seconds (None: unbounded)."""
        self.index = index
        self.timeout = timeout
        self.outputs = outputs
        self.prefix = route_prefix.strip("/")
        self.executor = executor
        self.client_binding = client_binding
        self.keys = keys
        self.app_dir = app_dir

    def url_path(self, fn: HttpFunction) -> str:
        """The public path of a function's route (for the start-up banner)."""
        parts = [p for p in (self.prefix, fn.route.strip("/")) if p]
        return "/" + "/".join(parts)

    def banner(self, base_url: str) -> list[str]:
        """One line per HTTP function for the start-up banner (and a warning per unserved input)."""
        lines = []
        for fn in self.index.http:
            methods = ",".join(fn.methods) if len(fn.methods) < 8 else "ALL"
            lines.append(f"{fn.name}: [{methods}] {base_url}{self.url_path(fn)}  ({fn.auth_level})")
            for other in fn.other_inputs:
                lines.append(f"    warning: input binding {other} is not supported (passed None)")
        return lines

    def _relative(self, path: str) -> str | None:
        """The path below the route prefix (case-insensitive), or None if outside it."""
        if not self.prefix:
            return path
        head = "/" + self.prefix
        if path.lower() == head.lower():
            return "/"
        if path.lower().startswith(head.lower() + "/"):
            return path[len(head) :]
        return None

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Catch-all handler for function routes."""
        relative = self._relative(request.path)
        if relative is None:
            return json_error(404, f"no route matches {request.path}")
        allowed: set[str] = set()
        for fn in self.index.http:
            params = fn.template.match(relative)
            if params is None:
                continue
            if request.method.upper() not in fn.methods:
                allowed.update(fn.methods)
                continue
            return await self._invoke(fn, params, request)
        if allowed:
            return json_error(405, f"method {request.method} not allowed", allowed=sorted(allowed))
        return json_error(404, f"no function route matches {request.path}")

    async def _invoke(
        self, fn: HttpFunction, params: dict[str, str], request: web.Request
    ) -> web.StreamResponse:
        if not self.keys.allows(request, fn.auth_level):
            return json_error(401, "a valid function key is required (?code= or x-functions-key header)")
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, f"request body larger than {MAX_HTTP_BODY} bytes")
        query: dict[str, str] = {}
        for name, value in request.query.items():
            query.setdefault(name, value)
        if fn.asgi:
            http_request: Any = asgi_request(request, body, params)
        else:
            http_request = func.HttpRequest(
                method=request.method,
                url=str(request.url),
                headers=_headers(request),
                params=query,
                route_params=params,
                body=body,
            )
        kwargs: dict[str, Any] = {fn.trigger_param: http_request}
        for name in fn.client_params:
            kwargs[name] = self.client_binding()
        for other in fn.other_inputs:
            kwargs[other.name] = None
        context = InvocationContext(fn.name, self.app_dir, request.headers.get("traceparent", ""))
        if fn.wants_context:
            kwargs["context"] = context
        started = time.monotonic()
        log.info("Executing 'Functions.%s' (Id=%s)", fn.name, context.invocation_id)
        deadline = None if self.timeout is None else asyncio.get_running_loop().time() + self.timeout
        try:
            call = self.outputs.call(fn.fn, kwargs, fn.is_async, self.executor, fn.outputs)
            result = await within(self.timeout, call, fn.name)
            if is_asgi_response(result):
                response = await send(request, result, deadline, fn.name)
            else:
                response = _to_response(result)
        except FunctionTimeoutError as exc:
            log.error("Executed 'Functions.%s' (Failed, Id=%s): %s", fn.name, context.invocation_id, exc)
            return json_error(500, f"Exception while executing function {fn.name}: {exc}")
        except Exception as exc:
            log.exception("Executed 'Functions.%s' (Failed, Id=%s)", fn.name, context.invocation_id)
            return json_error(
                500, f"Exception while executing function {fn.name}: {type(exc).__name__}: {exc}"
            )
        elapsed = int((time.monotonic() - started) * 1000)
        log.info(
            "Executed 'Functions.%s' (Succeeded, Id=%s, Duration=%dms)",
            fn.name,
            context.invocation_id,
            elapsed,
        )
        return response
