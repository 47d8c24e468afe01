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
from typing import Any, TextIO

import httpx
from httpx_sse import SSEError, aconnect_sse, connect_sse

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
    from harness.client import AgentClient  # the client builds on this module

    return ReplyEvent("final", AgentClient._run_result(response))


async def aiter_reply(
    http: httpx.AsyncClient, path: str, body: dict[str, Any], timeout: float
) -> AsyncIterator[ReplyEvent]:
    """POST the turn and yield its events, resuming after a dropped connection."""
    resume_url: str | None = None
    last_id: str | None = None
    for attempt in range(RESUMES + 1):
        headers = {"Accept": EVENT_STREAM}
        try:
            if resume_url is None:
                context = aconnect_sse(http, "POST", path, json=body, headers=headers, timeout=timeout)
            else:
                if last_id:
                    headers["Last-Event-ID"] = last_id
                context = aconnect_sse(http, "GET", resume_url, headers=headers, timeout=timeout)
            async with context as source:
                if not _is_stream(source.response):
                    await source.response.aread()
                    yield _not_streamed(source.response)
                    return
                async for sse in source.aiter_sse():
                    event = _event(sse.event, sse.data, sse.id)
                    if event.kind == "accepted":
                        resume_url = event.data.get("streamUrl") or resume_url
                        if attempt:
                            continue  # a resumed stream repeats nothing: it starts after last_id
                    if event.id and event.id != "final":
                        last_id = event.id
                    yield event
                    if event.kind == "final":
                        return
        except (httpx.TransportError, SSEError) as exc:
            if resume_url is None or attempt == RESUMES:
                raise StreamBroken(f"the reply stream broke: {exc}") from None
            continue
        if resume_url is None:
            break
    raise StreamBroken("the reply stream ended before its final event")


def iter_reply(http: httpx.Client, path: str, body: dict[str, Any], timeout: float) -> Iterator[ReplyEvent]:
    """Blocking twin of `aiter_reply` (for `ask` and scripts)."""
    resume_url: str | None = None
    last_id: str | None = None
    for attempt in range(RESUMES + 1):
        headers = {"Accept": EVENT_STREAM}
        try:
            if resume_url is None:
                context = connect_sse(http, "POST", path, json=body, headers=headers, timeout=timeout)
            else:
                if last_id:
                    headers["Last-Event-ID"] = last_id
                context = connect_sse(http, "GET", resume_url, headers=headers, timeout=timeout)
            with context as source:
                if not _is_stream(source.response):
                    source.response.read()
                    yield _not_streamed(source.response)
                    return
                for sse in source.iter_sse():
                    event = _event(sse.event, sse.data, sse.id)
                    if event.kind == "accepted":
                        resume_url = event.data.get("streamUrl") or resume_url
                        if attempt:
                            continue
                    if event.id and event.id != "final":
                        last_id = event.id
                    yield event
                    if event.kind == "final":
                        return
        except (httpx.TransportError, SSEError) as exc:
            if resume_url is None or attempt == RESUMES:
                raise StreamBroken(f"the reply stream broke: {exc}") from None
            continue
        if resume_url is None:
            break
    raise StreamBroken("the reply stream ended before its final event")


def print_reply(events: Iterator[ReplyEvent], out: TextIO) -> dict[str, Any]:
    """Write a streamed reply to a terminal as it comes (text as it grows, a line per tool call);
    returns the final event's JSON. What `ask` calls."""
    final: dict[str, Any] = {}
    for event in events:
        if event.kind == "text":
            out.write(str(event.data.get("text", "")))
        elif event.kind == "tool_call":
            out.write(f"\n[tool {event.data.get('name')}({json.dumps(event.data.get('arguments'))})]\n")
        elif event.kind == "tool_result":
            out.write(f"[result {str(event.data.get('result'))[:200]}]\n")
        elif event.kind == "reset":
            out.write("\n[the host retried this turn; starting over]\n")
        elif event.kind == "final":
            final = event.data
            if final.get("status") == "error":
                out.write(f"\nerror: {final.get('error')}")
        out.flush()
    out.write("\n")
    out.flush()
    return final
