"""The local host's MCP endpoint, where the Functions MCP extension serves it on Azure.

Every MCP trigger kind (`mcp_tools.py`, `mcp_resources.py`, `mcp_prompts.py`) is an `McpKind`: it
answers no requests of its own but lends the endpoint its MCP request handlers. The endpoint is
one `mcp` SDK low-level `Server` over those handlers, served at `/runtime/webhooks/mcp` with the
SDK's Streamable HTTP session manager, and at `/runtime/webhooks/mcp/sse` (+ `/message`) with its
older SSE transport; both are ASGI applications, bridged here onto the host's aiohttp server, so
the SDK does all JSON-RPC framing, sessions, pings and cancellation. With `--enforce-keys` a
request needs the host's key (Azure: the `mcp_extension` system key) as `x-functions-key` or
`?code=`; locally it is open, as `func start` leaves it.

What a function receives and how its return value is turned into a result follow the extension's
own source (see docs/mcp.md).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from abc import abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from azure.functions import meta
from mcp.server import Server
from mcp.server.sse import SseServerTransport
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager
from mcp.server.transport_security import TransportSecuritySettings

from ..api import KeyPolicy
from ..errors import AppLoadError
from ..loader import TriggeredFunction
from ..responses import json_error
from .asgi import asgi_scope
from .base import MCP_PATH, Trigger

log = logging.getLogger(__name__)

SSE_PATH = f"{MCP_PATH}/sse"
MESSAGE_PATH = f"{MCP_PATH}/message"
SYSTEM_KEY = "mcp_extension"  # the system key Azure checks at these paths
SERVER_NAME = "Azure Functions MCP server"  # the extension's defaults (host.json extensions.mcp)
SERVER_VERSION = "1.0.0"
_DISCONNECT_POLL = 0.5  # seconds between checks whether a streaming client is still there
_HIDDEN_HEADERS = frozenset({"x-functions-key", "authorization", "cookie"})

Handler = Callable[..., Awaitable[Any]]


class McpKind(Trigger):
    """A trigger kind the MCP endpoint serves: nothing to start or stop, the endpoint calls it."""

    @abstractmethod
    def handlers(self) -> dict[str, Handler]:
        """The `mcp` `Server(...)` keyword handlers this kind answers (`on_list_tools`, ...)."""

    async def call(self, function: TriggeredFunction, context: str) -> str | bytes:
        """Call `function` with its invocation context as the Python worker passes it (decoded by the
        `azure-functions` converter of its binding) and return what the worker sends back to the
        extension (the converter's encoding of the return value: a string, or bytes)."""
        converter = meta.get_binding_registry().get(self.binding_type)
        datum = meta.Datum(type="string", value=context)
        value = converter.decode(datum, trigger_metadata={}) if converter is not None else context
        result = await self.invoke(function, value)
        if converter is None:
            return "" if result is None else result if isinstance(result, str | bytes) else str(result)
        encoded = converter.encode(result, expected_type=None)
        return encoded.value if isinstance(encoded.value, str | bytes) else str(encoded.value)

    def start(self) -> None:
        """Served by the endpoint: nothing fires on its own."""

    async def stop(self) -> None:
        """Nothing runs on its own; a call under way ends with its request."""


def binding_json(binding: dict[str, Any], key: str, function: str, expected: type) -> Any:
    """A binding setting that holds JSON text (`toolProperties`, `metadata`, ...), parsed; None when
    unset; `AppLoadError` naming the function when it is not JSON of the `expected` type."""
    text = binding.get(key)
    if text in (None, ""):
        return None
    try:
        value = json.loads(text) if isinstance(text, str) else text
    except ValueError as exc:
        raise AppLoadError(f"function {function}: {key} is not JSON: {exc}") from exc
    if not isinstance(value, expected):
        raise AppLoadError(f"function {function}: {key} must be a JSON {expected.__name__}")
    return value


def invocation_context(ctx: Any, **fields: Any) -> str:
    """The trigger value the extension hands a function: a JSON object with the request's own
    fields (`name` and `arguments`, or `uri`) and `sessionid`, `clientinfo`, `transport`."""
    request = getattr(ctx, "request", None)
    headers = dict(getattr(request, "headers", None) or {})
    query = dict(getattr(request, "query_params", None) or {})
    session_id = headers.get("mcp-session-id") or query.get("session_id")
    sse = str(getattr(getattr(request, "url", None), "path", "")).endswith(MESSAGE_PATH)
    params = getattr(getattr(ctx, "session", None), "client_params", None)
    client = getattr(params, "clientInfo", None) or getattr(params, "client_info", None)
    shown = {k: v for k, v in headers.items() if k.lower() not in _HIDDEN_HEADERS}
    context = {
        **fields,
        "sessionid": session_id,
        "clientinfo": client.model_dump(mode="json", exclude_none=True) if client is not None else None,
        "transport": {
            "name": "http-sse" if sse else "http-streamable",
            "sessionId": session_id,
            "properties": {"headers": shown},
        },
    }
    return json.dumps(context)


class McpEndpoint:
    """The MCP server of an app's MCP trigger functions, mounted on the host's aiohttp app."""

    def __init__(self, kinds: list[McpKind], keys: KeyPolicy) -> None:
        self.kinds = kinds
        self.keys = keys
        handlers: dict[str, Handler] = {}
        for kind in kinds:
            handlers.update(kind.handlers())
        self.server = Server(SERVER_NAME, version=SERVER_VERSION, **handlers)
        # Open to any Host header, as the app's HTTP functions are (a host bound to 0.0.0.0 is
        # reached under other names); keys are the gate when they are enforced.
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        self.sessions = StreamableHTTPSessionManager(self.server, security_settings=security)
        self.sse = SseServerTransport(MESSAGE_PATH, security_settings=security)
        self._task: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()

    @classmethod
    def create(cls, triggers: list[Trigger], keys: KeyPolicy) -> McpEndpoint | None:
        """The endpoint for the app's MCP kinds; None when it has no MCP trigger function."""
        kinds = [t for t in triggers if isinstance(t, McpKind)]
        return cls(kinds, keys) if kinds else None

    def add_routes(self, app: web.Application) -> None:
        """Mount the transports (before the catch-all of the app's HTTP functions)."""
        app.router.add_route("*", SSE_PATH, self._guarded(self._sse))
        app.router.add_route("*", MESSAGE_PATH, self._guarded(self._message))
        app.router.add_route("*", MCP_PATH, self._guarded(self._streamable))
        app.router.add_route("*", MCP_PATH + "/", self._guarded(self._streamable))

    async def start(self) -> None:
        """Run the session manager (its task group lives in a task of its own, so that start and
        stop may come from different tasks)."""
        started = asyncio.get_running_loop().create_future()

        async def run() -> None:
            async with self.sessions.run():
                started.set_result(None)
                await self._stopping.wait()

        self._task = asyncio.get_running_loop().create_task(run(), name="mcp-sessions")
        await asyncio.wait({started, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if self._task.done():
            self._task.result()  # raises what stopped it

    async def stop(self) -> None:
        """End every session (calls under way are cancelled with them)."""
        self._stopping.set()
        if self._task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self._task, 5)
            self._task = None

    def banner(self, url: str) -> list[str]:
        """The endpoint lines of the start-up banner."""
        lines = [f"MCP endpoint: {url}{MCP_PATH} (Streamable HTTP), {url}{SSE_PATH} (SSE)"]
        if self.keys.enforce:
            lines.append(f"MCP key ({SYSTEM_KEY}, x-functions-key): the function key")
        return lines

    def _guarded(self, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]) -> Any:
        async def guarded(request: web.Request) -> web.StreamResponse:
            if not self.keys.allows(request, "system"):
                return json_error(
                    401, f"MCP requests need the {SYSTEM_KEY} system key (x-functions-key header or ?code=)"
                )
            if self._task is None or self._task.done():
                return json_error(503, "the MCP endpoint is not running")
            return await handler(request)

        return guarded

    async def _streamable(self, request: web.Request) -> web.StreamResponse:
        return await _call_asgi(self.sessions.handle_request, request, self._stopping)

    async def _message(self, request: web.Request) -> web.StreamResponse:
        return await _call_asgi(self.sse.handle_post_message, request, self._stopping)

    async def _sse(self, request: web.Request) -> web.StreamResponse:
        if request.method != "GET":
            return json_error(405, f"{SSE_PATH} takes GET (messages go to {MESSAGE_PATH})")

        async def app(scope: Any, receive: Any, send: Any) -> None:
            async with self.sse.connect_sse(scope, receive, send) as (read, write):
                await self.server.run(read, write, self.server.create_initialization_options())

        return await _call_asgi(app, request, self._stopping)


async def _call_asgi(
    app: Callable[..., Awaitable[None]], request: web.Request, stopping: asyncio.Event
) -> web.StreamResponse:
    """Serve one request with an ASGI app: the body as read, the response streamed as sent, and an
    `http.disconnect` once the client's connection closes or the host stops (a long SSE stream ends
    with either)."""
    body = await request.read()
    response: web.StreamResponse | None = None
    delivered = False

    async def receive() -> dict[str, Any]:
        nonlocal delivered
        if not delivered:
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}
        while request.transport is not None and not request.transport.is_closing() and not stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), _DISCONNECT_POLL)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        nonlocal response
        if message["type"] == "http.response.start":
            response = web.StreamResponse(status=message["status"])
            for name, value in message.get("headers", []):
                key, text = name.decode("latin-1"), value.decode("latin-1")
                if key.lower() == "content-length":
                    response.content_length = int(text)
                elif key.lower() != "transfer-encoding":
                    response.headers.add(key, text)
            await response.prepare(request)
        elif message["type"] == "http.response.body" and response is not None:
            data = message.get("body", b"")
            if data:
                await response.write(data)
            if not message.get("more_body", False):
                await response.write_eof()

    scope = asgi_scope(request)
    try:
        await app(scope, receive, send)
    except (ConnectionResetError, ConnectionError) as exc:
        log.debug("MCP client left %s %s: %s", request.method, request.path, exc)
    if response is None:
        return json_error(500, "the MCP transport gave no response")
    return response
