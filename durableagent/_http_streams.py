"""The agent routes with the HTTP streams extension's types, for `AgentFunctionApp(http_streams=True)`.

The Python worker streams a response body only for functions that take the extension's `Request`
and return its `StreamingResponse` (package `azurefunctions-extensions-http-fastapi`, FastAPI
types); importing the extension switches every HTTP function of the app to those types (it needs
`PYTHON_ENABLE_INIT_INDEXING=1`). So every route is registered here with them, converted at the
edge to and from the `func.HttpRequest` / `func.HttpResponse` the route logic is written for, and
the run and resume routes send their events as they come.

No `from __future__ import annotations` here: the worker and the local host read the trigger
parameter's annotation as a class to tell these functions from classic ones.
"""

from collections.abc import Awaitable, Callable
from typing import Any

import azure.functions as func

try:
    from azurefunctions.extensions.http.fastapi import Request, Response, StreamingResponse
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "AgentFunctionApp(http_streams=True) needs the HTTP streams extension: "
        "pip install 'durableagent[streams]' (azurefunctions-extensions-http-fastapi)"
    ) from exc

from ._routes import AgentRoutes
from ._run_request import EVENT_STREAM
from ._sse import EventStream


async def to_function_request(req: Request) -> func.HttpRequest:
    """The request as the route logic reads it (repeated headers joined with ', ', as the host does)."""
    headers: dict[str, str] = {}
    for name, value in req.headers.items():
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return func.HttpRequest(
        method=req.method,
        url=str(req.url),
        headers=headers,
        params=dict(req.query_params),
        route_params={k: str(v) for k, v in req.path_params.items()},
        body=await req.body(),
    )


def to_response(result: func.HttpResponse | EventStream) -> Response:
    """A route's answer in the extension's types; an event stream is sent as it is produced."""
    if isinstance(result, EventStream):
        return StreamingResponse(result.events, media_type=EVENT_STREAM, headers=result.headers)
    headers = {k: v for k, v in result.headers.items() if k.lower() != "content-type"}
    mimetype = result.mimetype or "text/plain"
    media_type = (
        f"{mimetype}; charset={result.charset or 'utf-8'}" if mimetype.startswith("text/") else mimetype
    )
    return Response(
        content=result.get_body() or b"",
        status_code=result.status_code,
        headers=headers,
        media_type=media_type,
    )


def streamed(handler: Callable[[func.HttpRequest, Any], Awaitable[func.HttpResponse | EventStream]]) -> Any:
    """A function in the extension's types around one route handler."""

    async def function(req: Request, client: Any) -> Response:
        return to_response(await handler(await to_function_request(req), client))

    return function


def register_streaming_routes(
    app: Any,
    table: list[tuple[str, str, str, Callable[[func.HttpRequest, Any], Awaitable[Any]]]],
    routes: AgentRoutes,
    enable_health_check: bool,
) -> None:
    """The functions of `table` (`app.route_table`), as the classic registration has them."""
    for name, route, method, handler in table:
        function = streamed(handler)
        function.__name__ = name
        app.function_name(name)(
            app.route(route=route, methods=[method])(app.durable_client_input(client_name="client")(function))
        )

    if enable_health_check:

        @app.function_name("dafx_health")
        @app.route(route="health", methods=["GET"])
        async def dafx_health(req: Request) -> Response:
            return to_response(routes.health(await to_function_request(req)))
