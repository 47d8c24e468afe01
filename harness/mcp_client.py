"""An app's MCP endpoint, reached as a real MCP client reaches it: the official `mcp` client over
Streamable HTTP (or the older SSE transport), with the initialize handshake MCP Inspector and
today's editors use, and the function key as `x-functions-key` when one is given.

What the CLI (`python -m harness mcp`), the benchmark and tests share. Every failure a user can
cause or meet (no app, no MCP functions, a missing key, an unknown tool, bad arguments) is a
one-line `ClientError`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import httpx2
from mcp import Client, ClientSession, types
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from .answers import ClientError

MCP_PATH = "/runtime/webhooks/mcp"
SSE_PATH = f"{MCP_PATH}/sse"
READ_TIMEOUT = 300.0  # a tool call may run an agent turn
T = TypeVar("T")


@dataclass
class Listing:
    """What an MCP endpoint offers."""

    tools: list[types.Tool] = field(default_factory=list)
    resources: list[types.Resource] = field(default_factory=list)
    templates: list[types.ResourceTemplate] = field(default_factory=list)
    prompts: list[types.Prompt] = field(default_factory=list)


def endpoint_url(app_url: str, sse: bool = False) -> str:
    """The MCP endpoint of an app at `app_url` (its Streamable HTTP or its SSE URL)."""
    return app_url.rstrip("/") + (SSE_PATH if sse else MCP_PATH)


class McpTarget:
    """One app's MCP endpoint; each call opens a session and closes it."""

    def __init__(self, app_url: str, key: str | None = None, sse: bool = False) -> None:
        self.url = endpoint_url(app_url, sse)
        self.headers = {"x-functions-key": key} if key else {}
        self.sse = sse
        self._refused: int | None = None  # the last 4xx/5xx status the endpoint answered

    async def _note_status(self, response: httpx2.Response) -> None:
        if response.status_code >= 400:
            self._refused = response.status_code

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ClientSession]:
        """An initialized MCP session (the connection's failures as one-line `ClientError`s)."""
        self._refused = None
        hooks = {"response": [self._note_status]}
        try:
            if self.sse:

                def factory(**kwargs: Any) -> httpx2.AsyncClient:
                    return httpx2.AsyncClient(**kwargs, event_hooks=hooks)

                async with sse_client(
                    self.url,
                    headers=self.headers,
                    sse_read_timeout=READ_TIMEOUT,
                    httpx_client_factory=factory,
                ) as streams:
                    async with ClientSession(*streams) as session:
                        await session.initialize()
                        yield session
                return
            http = httpx2.AsyncClient(
                headers=self.headers, timeout=httpx2.Timeout(30.0, read=READ_TIMEOUT), event_hooks=hooks
            )
            async with Client(streamable_http_client(self.url, http_client=http), mode="legacy") as client:
                yield client.session
        except ClientError:
            raise
        except BaseException as exc:
            problem = _connection_problem(exc, self._refused)
            if problem is None:
                raise
            raise ClientError(f"{self.url}: {problem}") from exc

    async def listing(self) -> Listing:
        """Tools, resources, resource templates and prompts (a kind the server lacks is empty)."""
        async with self.session() as session:
            capabilities = _capabilities(session)
            listing = Listing(tools=(await session.list_tools()).tools)
            if capabilities is None or capabilities.resources is not None:
                listing.resources = await _or_empty(session.list_resources, "resources")
                listing.templates = await _or_empty(session.list_resource_templates, "resource_templates")
            if capabilities is None or capabilities.prompts is not None:
                listing.prompts = await _or_empty(session.list_prompts, "prompts")
            return listing

    async def call(
        self,
        tool: str,
        arguments: dict[str, Any],
        progress: Callable[[float, float | None, str | None], Awaitable[None]] | None = None,
    ) -> types.CallToolResult:
        """One `tools/call` (an unknown tool or missing arguments as a `ClientError`)."""
        async with self.session() as session:
            try:
                return await session.call_tool(tool, arguments, progress_callback=progress)
            except MCPError as exc:
                raise ClientError(f"{tool}: {exc.message}") from exc


def serves_mcp(app_url: str, key: str | None = None) -> bool:
    """Whether the app at `app_url` has an MCP endpoint (any answer but 404 there: a host without MCP
    functions answers that path as an unknown route)."""
    headers = {"x-functions-key": key} if key else {}
    try:
        response = httpx.get(endpoint_url(app_url), headers=headers, timeout=5.0)
    except httpx.HTTPError:
        return False
    return response.status_code != 404


def _capabilities(session: ClientSession) -> types.ServerCapabilities | None:
    getter = getattr(session, "get_server_capabilities", None)
    return getter() if callable(getter) else None


async def _or_empty(call: Callable[[], Awaitable[Any]], attribute: str) -> list[Any]:
    try:
        return list(getattr(await call(), attribute))
    except MCPError:
        return []


def _connection_problem(exc: BaseException, refused: int | None = None) -> str | None:
    """One line for a failure to reach or use the endpoint (`refused`: an HTTP error status it
    answered, which the SDK's transports turn into a JSON-RPC error without it); None for anything
    else (a bug)."""
    leaves = _leaves(exc)
    status = next((x.response.status_code for x in leaves if isinstance(x, httpx2.HTTPStatusError)), refused)
    if status == 401:
        return "the MCP endpoint wants a key (pass --key, the function key)"
    if status == 404:
        return "no MCP endpoint here (does the app have MCP trigger functions?)"
    for inner in leaves:
        if isinstance(inner, httpx2.TransportError):
            return f"cannot reach the app ({type(inner).__name__}: {inner or 'no answer'})"
        if isinstance(inner, MCPError):
            return inner.message
    return f"the MCP endpoint answered {status}" if status is not None else None


def _leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions an exception group (anyio's task groups raise them) holds, or `exc` itself."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in _leaves(inner)]
    chained = exc.__cause__ or exc.__context__
    return [exc, *(_leaves(chained) if chained is not None else [])]
