"""Reading a turn's Server-Sent Events (the run route with `Accept: text/event-stream`).

Parsing is `httpx-sse`'s. A connection that drops mid-turn is resumed on the turn's stream route
with `Last-Event-ID` (the `streamUrl` of the `accepted` event), a few times, so a caller sees one
uninterrupted sequence of events; a `reset` event (the host retried the turn after a crash) is
passed on, and the caller drops what it showed of the turn. The last event is `final`, whose data
is the run route's JSON reply.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
from httpx_sse import ServerSentEvent, SSEError, aconnect_sse, connect_sse

from harness.answers import run_result

EVENT_STREAM = "text/event-stream"
RESUMES = 3


@dataclass(frozen=True)
class ReplyEvent:
    """`kind`: accepted, text, tool_call, tool_result, reset or final."""

    kind: str
    data: dict[str, Any] = field(default_factory=dict)
    id: str | None = None


class StreamBroken(Exception):
    """The stream ended, or could not be resumed, before its `final` event."""


def _event(kind: str, data: str, event_id: str | None) -> ReplyEvent:
    try:
        parsed = json.loads(data) if data else {}
    except ValueError:
        parsed = {"raw": data}
    return ReplyEvent(
        kind or "message", parsed if isinstance(parsed, dict) else {"value": parsed}, event_id or None
    )


def _is_stream(response: httpx.Response) -> bool:
    return response.headers.get("content-type", "").split(";", 1)[0].strip().lower() == EVENT_STREAM


def _not_streamed(response: httpx.Response) -> ReplyEvent:
    """An answer that is not an event stream (read it first): an error is a one-line ClientError;
    a JSON reply (an app that does not stream, e.g. one built on Microsoft's package, or a 202)
    is the turn's `final` event, so callers need no second code path."""
    return ReplyEvent("final", run_result(response))


class _Resumer:
    """What the async and the blocking reader share: which request to send (the POST, then the
    turn's stream route after the last id seen) and which events to pass on."""

    def __init__(self, path: str, body: dict[str, Any], timeout: float) -> None:
        self.path = path
        self.body = body
        self.timeout = timeout
        self.resume_url: str | None = None
        self.last_id: str | None = None
        self.connections = 0

    def request(self) -> tuple[str, str, dict[str, Any]]:
        """(method, url, httpx options) of the next connection."""
        self.connections += 1
        headers = {"Accept": EVENT_STREAM}
        if self.resume_url is None:
            return "POST", self.path, {"json": self.body, "headers": headers, "timeout": self.timeout}
        if self.last_id:
            headers["Last-Event-ID"] = self.last_id
        return "GET", self.resume_url, {"headers": headers, "timeout": self.timeout}

    def take(self, sse: ServerSentEvent) -> ReplyEvent | None:
        """The event to pass on, or None (a resumed stream's own `accepted`)."""
        event = _event(sse.event, sse.data, sse.id)
        if event.kind == "accepted":
            resumed = self.resume_url is not None
            self.resume_url = event.data.get("streamUrl") or self.resume_url
            if resumed:
                return None
        if event.id and event.id != "final":
            self.last_id = event.id
        return event

    def broke(self, exc: Exception) -> None:
        """A connection failed: raise unless it can be resumed once more."""
        if self.resume_url is None or self.connections > RESUMES:
            raise StreamBroken(f"the reply stream broke: {exc}") from None

    def ended(self) -> bool:
        """A connection ended without `final`: whether to try again."""
        if self.resume_url is None or self.connections > RESUMES:
            raise StreamBroken("the reply stream ended before its final event")
        return True


async def aiter_reply(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], timeout: float
) -> AsyncIterator[ReplyEvent]:
    """POST the turn and yield its events, resuming after a dropped connection."""
    resumer = _Resumer(path, body, timeout)
    while True:
        method, url, options = resumer.request()
        try:
            async with aconnect_sse(http, method, url, **options) as source:
                if not _is_stream(source.response):
                    await source.response.aread()
                    yield _not_streamed(source.response)
                    return
                async for sse in source.aiter_sse():
                    event = resumer.take(sse)
                    if event is not None:
                        yield event
                        if event.kind == "final":
                            return
        except (httpx.TransportError, SSEError) as exc:
            resumer.broke(exc)
            continue
        resumer.ended()


def iter_reply(http: httpx.Client, path: str, body: dict[str, Any], timeout: float) -> Iterator[ReplyEvent]:
    """Blocking twin of `aiter_reply` (for `ask` and scripts)."""
    resumer = _Resumer(path, body, timeout)
    while True:
        method, url, options = resumer.request()
        try:
            with connect_sse(http, method, url, **options) as source:
                if not _is_stream(source.response):
                    source.response.read()
                    yield _not_streamed(source.response)
                    return
                for sse in source.iter_sse():
                    event = resumer.take(sse)
                    if event is not None:
                        yield event
                        if event.kind == "final":
                            return
        except (httpx.TransportError, SSEError) as exc:
            resumer.broke(exc)
            continue
        resumer.ended()
