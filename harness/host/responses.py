"""Small JSON response helpers shared by the HTTP-trigger and Durable API handlers."""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest
from aiohttp.web_server import Server

log = logging.getLogger(__name__)

# What the Functions host accepts in a request line or one header; the HTTP parser is given far more
# room (PARSER_LIMIT) so that a longer one reaches `json_errors` and gets a JSON answer, not
# aiohttp's plain-text 400.
LINE_LIMIT = 8190
PARSER_LIMIT = 1024 * 1024


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    """A JSON response (`application/json; charset=utf-8`)."""
    return web.Response(
        text=json.dumps(data),
        status=status,
        content_type="application/json",
        charset="utf-8",
        headers=headers,
    )


def json_error(status: int, message: str, **extra: Any) -> web.Response:
    """Every error the host produces itself is `{"error": ...}` JSON, never HTML or a traceback."""
    return json_response({"error": message, **extra}, status=status)


@web.middleware
async def json_errors(request: web.Request, handler: Any) -> web.StreamResponse:
    """aiohttp's own errors (no route for an odd path, body too large), over-long request lines and
    headers, and any exception a handler let through become JSON like ours (a bug is a 500, logged
    with its traceback, never a plain-text page)."""
    if len(request.raw_path) + len(request.method) + 12 > LINE_LIMIT:
        return json_error(414, f"request line longer than {LINE_LIMIT} bytes")
    for name, value in request.raw_headers:
        if len(name) + len(value) + 2 > LINE_LIMIT:
            return json_error(431, f"header {name[:64].decode('latin-1')!r} longer than {LINE_LIMIT} bytes")
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason or "error", path=request.path)
    except RecursionError:
        return json_error(400, "request nested too deeply")
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return json_error(500, "internal error in the local host (see its log)", path=request.path)


class _JsonErrorHandler(RequestHandler):
    """A connection handler whose own error pages (a request the HTTP parser refused: bad bytes in a
    header, a malformed request line) are JSON like every other error of the host."""

    def handle_error(
        self,
        request: BaseRequest,
        status: int = 500,
        exc: BaseException | None = None,
        message: str | None = None,
    ) -> web.StreamResponse:
        super().handle_error(request, status, exc, message)  # logs, and refuses once output was sent
        text = message if status != 500 and message else "internal error in the local host (see its log)"
        response = json_error(status, " ".join(text.split())[:500])
        response.force_close()
        return response


class _JsonErrorServer(Server):
    def __call__(self) -> RequestHandler:
        return _JsonErrorHandler(self, loop=self._loop, **self._kwargs)


class JsonErrorRunner(web.AppRunner):
    """An AppRunner whose connections answer parser errors with JSON (aiohttp answers them in plain
    text before any middleware runs, and offers no setting for it)."""

    async def _make_server(self) -> Server:
        server = await super()._make_server()
        server.__class__ = _JsonErrorServer
        return server
