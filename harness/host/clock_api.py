"""`/admin/clock`: read the host's clock, and move a virtual one (`docs/virtual-time.md`).

`GET /admin/clock` -> `{"now", "mode", "next_due"}` (`mode`: real, auto or manual; `next_due`: the
next timer armed, null when none). `POST /admin/clock` with `{"advance": "PT72H"}` (an ISO-8601
duration) or `{"to": "2030-01-01T00:00:00Z"}` moves a virtual clock there, firing every timer on
the way at its own time, and answers once the work that started has settled, with the same body as
GET. Backwards, a bad body, duration or time is a 400 naming the problem; a real clock is a 409.
Also `RequestCount`: the HTTP requests in flight, which an auto clock waits for.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web
from azure.core.exceptions import AzureError

from .api import KeyPolicy
from .clock import Clock, ClockError, VirtualClock, iso, parse_duration, parse_time
from .responses import json_error, json_response

CLOCK_PATH = "/admin/clock"
READS = frozenset({"GET", "HEAD", "OPTIONS"})


class ClockApi:
    """The two handlers of `/admin/clock` (keys checked as for admin routes when enforced)."""

    def __init__(self, clock: Clock, keys: KeyPolicy) -> None:
        self.clock = clock
        self.keys = keys

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(CLOCK_PATH, self.get)
        app.router.add_post(CLOCK_PATH, self.post)

    def state(self) -> dict[str, Any]:
        clock = self.clock
        due = clock.next_due() if isinstance(clock, VirtualClock) else None
        return {"now": iso(clock.now()), "mode": clock.mode, "next_due": iso(due) if due else None}

    async def get(self, request: web.Request) -> web.StreamResponse:
        if not self.keys.allows(request, "admin"):
            return json_error(401, "this route needs the host's key (x-functions-key or ?code=)")
        return json_response(self.state())

    async def post(self, request: web.Request) -> web.StreamResponse:
        if not self.keys.allows(request, "admin"):
            return json_error(401, "this route needs the host's key (x-functions-key or ?code=)")
        if not isinstance(self.clock, VirtualClock):
            return json_error(
                409,
                "this host runs on real time: its clock cannot be moved "
                "(start it with --virtual-time manual or auto)",
                **self.state(),
            )
        try:
            body = json.loads(await request.read() or b"null")
        except (ValueError, UnicodeDecodeError) as exc:
            return json_error(400, f"the body is not JSON: {exc}")
        if not isinstance(body, dict) or len(body) != 1 or not set(body) <= {"advance", "to"}:
            return json_error(
                400,
                'expected a JSON object with one of "advance" (e.g. "PT72H") '
                'or "to" (e.g. "2030-01-01T00:00:00Z")',
            )
        try:
            if "advance" in body:
                if not isinstance(body["advance"], str):
                    given = json.dumps(body["advance"])
                    raise ClockError(f'"advance" must be an ISO-8601 duration such as "PT72H", not {given}')
                await self.clock.advance(parse_duration(body["advance"]))
            else:
                await self.clock.advance_to(parse_time(body["to"]))
        except ClockError as exc:
            return json_error(400, str(exc), **self.state())
        except AzureError as exc:  # the new now could not be saved with the hub: the clock stayed
            reason = " ".join(str(exc).split())[:200] or type(exc).__name__
            return json_error(
                503, f"storage did not take the clock's new time ({reason}); it stays", **self.state()
            )
        return json_response(self.state())


class RequestCount:
    """HTTP requests in flight, as an aiohttp middleware. Not counted: the clock's own route, reads
    of the Durable API (a status poll starts no work, and a client polling fast would otherwise
    never leave the host idle), a Durable API start that waits for its instance's end
    (`?timeout=`), since what it waits for may be a timer only a move of the clock fires, and GETs
    under `streams` (an MCP client's event stream stays open as long as the client is connected)."""

    def __init__(self, durable_base: str, streams: tuple[str, ...] = ()) -> None:
        self.count = 0
        self._durable_base = durable_base
        self._streams = streams

    @web.middleware
    async def middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if not self._counts(request):
            return await handler(request)
        self.count += 1
        try:
            return await handler(request)
        finally:
            self.count -= 1

    def _counts(self, request: web.Request) -> bool:
        path, read = request.path, request.method in READS
        if path == CLOCK_PATH or (read and path.startswith(self._streams)):
            return False
        return not (path.startswith(self._durable_base) and (read or "timeout" in request.query))

    def busy(self) -> bool:
        return self.count > 0
