"""HTTP functions written for the HTTP streams extension (FastAPI `Request` in, `Response` out).

The Functions Python worker serves such functions through its own web server and streams a
`StreamingResponse` body as it is produced; the local host does the same here on aiohttp: the
request becomes a Starlette `Request` (route parameters as `path_params`, as the worker's
synchronizer sets them) and a streamed body is written chunk by chunk to an aiohttp
`StreamResponse`. A client that goes away ends the body's iterator and nothing else; a body still
streaming when functionTimeout runs out is cut off (the status line is long sent).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import typing
from collections.abc import Callable
from typing import Any

from aiohttp import web

log = logging.getLogger(__name__)


def takes_asgi_request(fn: Callable[..., Any], trigger_param: str) -> bool:
    """Whether the trigger parameter is annotated with a Starlette (FastAPI) `Request` class."""
    try:
        annotation = typing.get_type_hints(fn).get(trigger_param)
    except Exception:
        annotation = inspect.signature(fn).parameters.get(trigger_param, None)
        annotation = getattr(annotation, "annotation", None)
    if not inspect.isclass(annotation) or not annotation.__module__.startswith(("starlette", "fastapi")):
        return False
    from starlette.requests import Request

    return issubclass(annotation, Request)


def asgi_request(request: web.Request, body: bytes, route_params: dict[str, str]) -> Any:
    """A Starlette `Request` for an aiohttp request whose body was already read."""
    from starlette.requests import Request

    sent = False

    async def receive() -> dict[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return Request(asgi_scope(request, route_params), receive)


def asgi_scope(request: web.Request, route_params: dict[str, str] | None = None) -> dict[str, Any]:
    """The ASGI `http` scope of an aiohttp request (also what the MCP endpoint's SDK apps are given)."""
    transport = request.transport
    sockname = transport.get_extra_info("sockname") if transport else None
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": f"{request.version.major}.{request.version.minor}",
        "method": request.method,
        "scheme": request.scheme,
        "path": request.path,
        "raw_path": request.raw_path.split("?", 1)[0].encode(),
        "query_string": request.query_string.encode(),
        "root_path": "",
        "headers": [(name.lower(), value) for name, value in request.raw_headers],
        "server": tuple(sockname[:2]) if sockname else ("127.0.0.1", 0),
        "client": transport.get_extra_info("peername") if transport else None,
        "path_params": dict(route_params or {}),
    }


def _headers(response: Any) -> list[tuple[str, str]]:
    return [
        (k.decode("latin-1"), v.decode("latin-1"))
        for k, v in response.raw_headers
        if k.lower() not in (b"content-length", b"transfer-encoding")
    ]


def is_asgi_response(result: Any) -> bool:
    return type(result).__module__.startswith(("starlette", "fastapi"))


async def send(
    request: web.Request, result: Any, deadline: float | None = None, function: str = ""
) -> web.StreamResponse:
    """Answer with a Starlette response; a streamed body is written as its iterator yields, until the
    loop time `deadline` (functionTimeout)."""
    from starlette.responses import StreamingResponse

    if not isinstance(result, StreamingResponse):
        response = web.Response(status=result.status_code, body=result.body)
        for name, value in _headers(result):
            response.headers.add(name, value)
        return response
    response = web.StreamResponse(status=result.status_code)
    for name, value in _headers(result):
        response.headers.add(name, value)
    iterator = result.body_iterator
    try:
        await response.prepare(request)
        async with asyncio.timeout_at(deadline):
            async for chunk in iterator:
                data = chunk.encode(result.charset) if isinstance(chunk, str) else bytes(chunk)
                await response.write(data)
        await response.write_eof()
    except TimeoutError:
        log.error(
            "streamed body of %s %s cut off: functionTimeout exceeded by function: Functions.%s",
            request.method,
            request.path,
            function,
        )
        response.force_close()
    except (ConnectionResetError, ConnectionError) as exc:
        log.info("client left %s %s while it streamed: %s", request.method, request.path, exc)
    except Exception:
        # The status line is sent: all a failing body can do is end the connection early (as the
        # worker's web server does), which the client sees as a broken stream.
        log.exception("streamed body of %s %s failed", request.method, request.path)
        response.force_close()
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
    return response
