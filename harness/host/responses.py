"""Small JSON response helpers shared by the HTTP-trigger and Durable API handlers."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web


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
    """aiohttp's own errors (no route for an odd path, body too large) become JSON like ours."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return json_error(exc.status, exc.reason or "error", path=request.path)
