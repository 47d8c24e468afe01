"""Reply streams without a host: what a turn writes, what the SSE route makes of it, and that a
stream store that fails never fails a turn (the session state is the truth)."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import azure.functions as func
import pytest
from agent_framework import AgentResponseUpdate, Content

from durableagent._run_request import wants_events
from durableagent._sse import cursor_of
from durableagent.streams import AFTER_ALL, StreamEvent, StreamId, parse_event_id, row_key, update_events
from fakes import ScriptedChatClient

from .conftest import make_agent


class MemoryStore:
    """The store protocol over a dict (the real one is a table; see the integration tests)."""

    def __init__(self) -> None:
        from datetime import timedelta

        self.ttl = timedelta(hours=1)
        self.rows: dict[str, list[StreamEvent]] = {}

    async def append(self, stream: StreamId, events: list[StreamEvent]) -> None:
        self.rows.setdefault(stream.partition, []).extend(events)

    async def read(self, stream: StreamId, after: str | None) -> list[StreamEvent]:
        return sorted(
            (e for e in self.rows.get(stream.partition, []) if e.row_key > (after or "")),
            key=lambda e: e.row_key,
        )

    async def sweep(self) -> int:
        return 0


class BrokenStore(MemoryStore):
    async def append(self, stream: StreamId, events: list[StreamEvent]) -> None:
        raise ConnectionError("table storage is down")

    async def read(self, stream: StreamId, after: str | None) -> list[StreamEvent]:
        raise ConnectionError("table storage is down")


async def sse_run(host: Any, agent: str, payload: dict[str, Any]) -> tuple[func.HttpResponse, list[tuple]]:
    """POST with `Accept: text/event-stream` to the (classic) run function; the parsed events."""
    fn = host.functions["dafx_run_agent"].get_user_function()
    req = func.HttpRequest(
        "POST",
        f"http://localhost/api/agents/{agent}/run",
        body=json.dumps(payload).encode(),
        route_params={"agent_name": agent},
        headers={"Accept": "text/event-stream"},
    )
    response = await fn.client_function(req=req, client=host)
    events = []
    for block in response.get_body().decode().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        if fields:
            events.append((fields["event"], json.loads(fields["data"]), fields.get("id")))
    return response, events


async def stored_turn(store: Any, stream: StreamId) -> list[StreamEvent]:
    """The stream's rows in order once its `end` row is stored (a turn's last writes go on after
    it, on the agent loop)."""
    deadline = time.monotonic() + 5
    rows = await store.read(stream, None)
    while [r.kind for r in rows][-1:] != ["end"]:
        assert time.monotonic() < deadline, [r.kind for r in rows]
        await asyncio.sleep(0.005)
        rows = await store.read(stream, None)
    return rows


async def test_a_streaming_turn_writes_chunks_and_the_route_ends_with_the_stored_reply(build):
    store = MemoryStore()
    fake = ScriptedChatClient(steps=[{"chunks": ["Sun", "ny"]}])
    _, host = build(make_agent(fake), stream_store=store)
    response, events = await sse_run(host, "WeatherAgent", {"message": "weather?", "sessionId": "s"})
    assert response.mimetype == "text/event-stream"
    assert [e[0] for e in events] == ["accepted", "text", "text", "final"]
    assert events[-1][1]["response"] == "Sunny" and events[-1][1]["status"] == "success"
    rows = await stored_turn(store, StreamId("dafx-weatheragent", "s", events[0][1]["correlationId"]))
    # the run route's mark (attempt 0, so the resume route knows a turn still queued), then the attempt
    assert [r.kind for r in rows] == ["queued", "start", "text", "text", "end"] and rows[-1].data == {
        "status": "success"
    }
    assert rows[0].attempt == 0 and all(r.attempt > 0 for r in rows[1:])


async def test_a_turn_run_without_accept_writes_no_stream(build):
    store = MemoryStore()
    _, host = build(make_agent(ScriptedChatClient(steps=[{"chunks": ["a", "b"]}])), stream_store=store)
    status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": "s"})
    assert status == 200 and body["response"] == "ab" and store.rows == {}


async def test_a_failed_turn_ends_its_stream_with_error_and_the_final_event_says_so(build):
    store = MemoryStore()
    fake = ScriptedChatClient(steps=[{"error": "model exploded"}])
    _, host = build(make_agent(fake), stream_store=store)
    _, events = await sse_run(host, "WeatherAgent", {"message": "hi", "sessionId": "s"})
    assert events[-1][0] == "final" and events[-1][1]["status"] == "error"
    rows = await stored_turn(store, StreamId("dafx-weatheragent", "s", events[0][1]["correlationId"]))
    assert rows[-1].kind == "end" and rows[-1].data == {"status": "error"}


async def test_a_stream_store_that_is_down_never_fails_the_turn(build, caplog):
    fake = ScriptedChatClient(steps=[{"chunks": ["still ", "fine"]}])
    _, host = build(make_agent(fake), stream_store=BrokenStore())
    with caplog.at_level(logging.WARNING):
        response, events = await sse_run(host, "WeatherAgent", {"message": "hi", "sessionId": "s"})
    assert response.status_code == 200
    # Chunks reach a reader in the same process only if it listened before the turn ran (they are
    # handed over, not stored); the final reply always comes, from the state.
    assert events[0][0] == "accepted" and events[-1][0] == "final"
    assert "".join(e[1]["text"] for e in events if e[0] == "text") in ("", "still fine")
    assert events[-1][1]["response"] == "still fine"
    assert "is off for this turn" in caplog.text
    status, state = await host.state("WeatherAgent", "s")
    assert status == 200 and state["conversation_history"][-1]["content"] == "still fine"


async def test_without_a_store_sse_still_answers_with_the_final_reply(build):
    _, host = build(make_agent(ScriptedChatClient(steps=["plain"])), streaming=False)
    _, events = await sse_run(host, "WeatherAgent", {"message": "hi", "sessionId": "s"})
    assert [e[0] for e in events] == ["accepted", "final"] and events[-1][1]["response"] == "plain"


def test_update_events_merge_text_and_name_tool_calls_and_results():
    update = AgentResponseUpdate(
        role="assistant",
        contents=[
            Content.from_text("a"),
            Content.from_text("b"),
            Content.from_function_call(call_id="c1", name="get_weather", arguments='{"location": "Oslo"}'),
            Content.from_function_result(call_id="c1", result="rainy"),
        ],
    )
    assert update_events(update) == [
        ("text", {"text": "ab"}),
        ("tool_call", {"call_id": "c1", "name": "get_weather", "arguments": {"location": "Oslo"}}),
        ("tool_result", {"call_id": "c1", "result": "rainy"}),
    ]


def test_event_ids_and_cursors():
    assert parse_event_id("12.3") == row_key(12, 3)
    assert cursor_of(None, "12.3") == row_key(12, 3)
    assert cursor_of("12.4", "12.3") == row_key(12, 4)  # the header wins
    assert cursor_of(None, None) is None and cursor_of("", None) is None
    # after `final` only the reply is left: a cursor past every row of any stream
    assert cursor_of("final", None) == AFTER_ALL and cursor_of(None, "final") == AFTER_ALL
    assert all(cursor_of("final", None) > row_key(time.time_ns() * 1000, seq) for seq in (0, 10**8 - 1))
    for bad in ("x", "1", "1.x", "-1.2", "1.2.3", "9" * 21 + ".1"):
        with pytest.raises(ValueError):
            parse_event_id(bad)


def test_accept_headers():
    assert wants_events("text/event-stream")
    assert wants_events("application/json;q=0.5, Text/Event-Stream;q=1")
    assert not wants_events("application/json") and not wants_events(None) and not wants_events("*/*")
    # quality values decide: JSON preferred, events refused, a malformed q read as 1
    assert not wants_events("text/event-stream;q=0.5, application/json")
    assert not wants_events("text/event-stream; q=0") and not wants_events("text/event-stream;q=0.0, */*")
    assert wants_events("text/event-stream;q=0.5, application/json;q=0.5, */*;q=0.1")
    assert wants_events("text/event-stream;q=abc") and wants_events("text/event-stream;q=7")
    assert not wants_events("text/event-stream;q=0.2, application/problem+json;q=0.9")
    assert not wants_events("text/event-stream;q=0.1, text/plain") and wants_events("text/event-stream, */*")


def test_stream_ids_never_clash_across_keys():
    a = StreamId("dafx-a", "k/1", "c")
    assert a.partition == StreamId("DAFX-A", "k/1", "c").partition
    assert a.partition != StreamId("dafx-a", "k", "1\nc").partition
    assert len(a.partition) == 64 and a.partition.isalnum()


async def test_the_stream_route_refuses_bad_ids_and_unknown_turns_with_json(build):
    _, host = build(make_agent(ScriptedChatClient(steps=["hi"])), stream_store=MemoryStore())
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "s"})

    async def stream(agent: str, session: str, correlation: str, **headers: str) -> tuple[int, Any]:
        return await host.call(
            "dafx_stream_turn",
            "GET",
            f"http://localhost/api/agents/{agent}/{session}/stream/{correlation}",
            headers=headers,
            agent_name=agent,
            session_id=session,
            correlation_id=correlation,
        )

    assert (await stream("Nobody", "s", "c"))[0] == 404
    status, body = await stream("WeatherAgent", "s", "not an id")
    assert status == 400 and "correlation id" in body["error"]
    status, body = await stream("WeatherAgent", "s", "c1", **{"Last-Event-ID": "1.x"})
    assert status == 400 and "Last-Event-ID" in body["error"]
    status, body = await stream("WeatherAgent", "s", "unknown")
    assert status == 404 and "no turn 'unknown'" in body["error"]


async def test_a_reader_of_a_turn_its_session_no_longer_holds_ends_with_an_error(build, monkeypatch):
    """The stream of a session deleted (or reset) since outlives it: a reader gets an error `final`
    once the ended turn stays out of the state past the grace, instead of waiting the run timeout."""
    from durableagent import _sse
    from durableagent.session import AgentSessionId

    monkeypatch.setattr(_sse, "ENDED_GRACE", 0.05)
    store = MemoryStore()
    _, host = build(make_agent(ScriptedChatClient(steps=[{"chunks": ["a", "b"]}])), stream_store=store)
    _, events = await sse_run(host, "WeatherAgent", {"message": "hi", "sessionId": "s"})
    correlation = events[0][1]["correlationId"]
    await stored_turn(store, StreamId("dafx-weatheragent", "s", correlation))
    session = AgentSessionId("WeatherAgent", "s")

    async def final_of(deadline: float) -> dict[str, Any]:
        events_of = _sse.turn_events(store, host, session, correlation, deadline, dict, "")
        replay = [chunk async for chunk in events_of]
        assert replay[-1].startswith("id: final\nevent: final\n")
        return json.loads(replay[-1].split("data: ", 1)[1])

    # a state that cannot be read is no sign of a session gone: the wait goes on to the deadline
    host.read_fail_with = ConnectionError("storage is down")
    assert (await final_of(time.monotonic() + 0.5))["status"] == "accepted"
    host.read_fail_with = None
    host.states.clear()  # the session is deleted
    final = await final_of(time.monotonic() + 30)
    assert final["status"] == "error" and "deleted or reset" in final["error"]
