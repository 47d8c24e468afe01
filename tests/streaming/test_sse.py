"""Replies as Server-Sent Events through real HTTP: chunks as the model makes them, a final event
equal to the stored reply, resuming with Last-Event-ID, a host killed mid-stream."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from harness.client import SyncAgentClient
from harness.reply_stream import ReplyEvent

pytestmark = pytest.mark.integration

RUN = "/api/agents/WeatherAgent/run"
TOOL_THEN_CHUNKS = {
    "steps": [
        {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}]},
        {"chunks": ["It is ", "{tool_result}", " today."]},
    ]
}


def _events(response: httpx.Response) -> list[ReplyEvent]:
    """Parse a whole SSE body (what a reader gets once the stream ended)."""
    from harness.reply_stream import _event

    events = []
    for block in response.text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append(_event(fields.get("event", ""), fields.get("data", ""), fields.get("id")))
    return events


def _stored_reply(client: httpx.Client, session: str) -> str:
    state = client.get(f"/api/agents/WeatherAgent/{session}").json()
    return state["conversation_history"][-1]["content"]


def test_run_streams_tool_calls_and_text_then_the_stored_reply(
    function_host, host_client, chat_script, unique_session
):
    chat_script.set(TOOL_THEN_CHUNKS)
    with SyncAgentClient(function_host.url) as client:
        events = list(client.stream_run("WeatherAgent", "weather in Paris?", unique_session))
    kinds = [e.kind for e in events]
    assert kinds == ["accepted", "tool_call", "tool_result", "text", "text", "text", "final"]
    assert events[1].data["name"] == "get_weather" and events[1].data["arguments"] == {"location": "Paris"}
    assert events[2].data["call_id"] == events[1].data["call_id"]
    text = "".join(e.data["text"] for e in events if e.kind == "text")
    final = events[-1].data
    assert final["status"] == "success" and final["response"] == text
    assert final["sessionId"] == unique_session and final["message_count"] == 2
    assert text == _stored_reply(host_client, unique_session)
    # chunk ids are ATTEMPT.SEQ, increasing
    ids = [e.id for e in events if e.kind in ("tool_call", "tool_result", "text")]
    assert ids == sorted(ids, key=lambda i: tuple(int(p) for p in i.split(".")))


def test_a_request_without_accept_gets_the_json_reply_as_before(host_client, chat_script, unique_session):
    chat_script.set({"steps": [{"chunks": ["a", "b"]}]})
    reply = host_client.post(RUN, json={"message": "hi", "sessionId": unique_session})
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json")
    assert reply.json()["response"] == "ab"


def test_resume_after_last_event_id_and_full_replay(host_client, chat_script, unique_session):
    chat_script.set(TOOL_THEN_CHUNKS)
    first = host_client.post(
        RUN,
        json={"message": "weather?", "sessionId": unique_session},
        headers={"Accept": "text/event-stream"},
    )
    events = _events(first)
    stream_url = events[0].data["streamUrl"]
    tool_call = next(e for e in events if e.kind == "tool_call")
    resumed = _events(host_client.get(stream_url, headers={"Last-Event-ID": tool_call.id}))
    assert [e.kind for e in resumed] == ["tool_result", "text", "text", "text", "final"]
    assert resumed[-1].data == events[-1].data  # the same final reply as the run route's
    by_cursor = _events(host_client.get(stream_url, params={"cursor": tool_call.id}))
    assert [e.kind for e in by_cursor] == [e.kind for e in resumed]
    replay = _events(host_client.get(stream_url))
    assert [e.kind for e in replay] == [e.kind for e in events[1:]]


def test_bad_cursor_and_unknown_turn_are_json_errors(host_client, chat_script, unique_session):
    chat_script.set({"steps": ["hello"]})
    assert host_client.post(RUN, json={"message": "hi", "sessionId": unique_session}).status_code == 200
    base = f"/api/agents/WeatherAgent/{unique_session}/stream"
    bad = host_client.get(f"{base}/nope", headers={"Last-Event-ID": "x.y"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]
    unknown = host_client.get(f"{base}/{'0' * 32}")
    assert unknown.status_code == 404 and unknown.json()["status"] == "error"


def test_a_client_that_leaves_does_not_stop_the_turn(host_client, chat_script, unique_session):
    from tests.integration.conftest import wait_for_state

    chat_script.set({"steps": [{"chunks": ["still ", "here"], "delay": 0.5}]})
    with host_client.stream(
        "POST",
        RUN,
        json={"message": "hi", "sessionId": unique_session},
        headers={"Accept": "text/event-stream"},
    ) as response:
        assert next(response.iter_lines()).startswith("event: accepted")
    state = wait_for_state(host_client, "WeatherAgent", unique_session, lambda s: s["message_count"] == 2)
    assert state["conversation_history"][-1]["content"] == "still here"


def _tool_then_slow_model(city: str, delay: float) -> dict:
    """A turn whose tool call streams at once, then the model's second call waits `delay` s."""
    return {
        "steps": [
            {"tool_calls": [{"name": "get_weather", "arguments": {"location": city}}]},
            {"chunks": [f"{city}: ", "{tool_result}"], "delay": delay},
        ]
    }


def _live_events(http: httpx.Client, message: str, session: str) -> Iterator[ReplyEvent]:
    """The events of a streamed run as they arrive (leaving the loop drops the connection)."""
    from httpx_sse import EventSource

    from harness.reply_stream import _event

    body = {"message": message, "sessionId": session}
    with http.stream("POST", RUN, json=body, headers={"Accept": "text/event-stream"}) as response:
        for sse in EventSource(response).iter_sse():
            yield _event(sse.event, sse.data, sse.id)


def test_host_killed_mid_stream_resumes_with_a_reset_and_the_retried_turn(
    function_host, chat_script, unique_session
):
    # The host dies while the model's second call waits, after the tool events went out.
    chat_script.set(_tool_then_slow_model("Oslo", 3.0))
    seen: list[ReplyEvent] = []
    with httpx.Client(base_url=function_host.url, timeout=30) as http:
        with pytest.raises(httpx.TransportError):
            for event in _live_events(http, "Oslo?", unique_session):
                seen.append(event)
                if event.kind == "tool_result":
                    function_host.process.kill()
    assert [e.kind for e in seen] == ["accepted", "tool_call", "tool_result"]
    function_host.restart()
    with httpx.Client(base_url=function_host.url, timeout=60) as http:
        rest = _events(http.get(seen[0].data["streamUrl"], headers={"Last-Event-ID": seen[-1].id}))
        state = http.get(f"/api/agents/WeatherAgent/{unique_session}").json()
    kinds = [e.kind for e in rest]
    # The retried turn is a new attempt: the client is told to start over, then gets all of it.
    assert kinds[0] == "reset" and kinds[-1] == "final", kinds
    assert kinds[1:-1] == ["tool_call", "tool_result", "text", "text"]
    final = rest[-1].data
    assert final["status"] == "success"
    assert final["response"] == "".join(e.data["text"] for e in rest if e.kind == "text")
    assert state["message_count"] == 2 and state["conversation_history"][-1]["content"] == final["response"]


def test_a_dropped_connection_resumes_mid_turn_with_last_event_id(function_host, chat_script, unique_session):
    # The client leaves after the tool result, while the model's second call still runs, and
    # comes back with the last id it saw: it gets the rest of the same attempt, no reset.
    chat_script.set(_tool_then_slow_model("Lima", 1.0))
    seen: list[ReplyEvent] = []
    with httpx.Client(base_url=function_host.url, timeout=30) as http:
        for event in _live_events(http, "Lima?", unique_session):
            seen.append(event)
            if event.kind == "tool_result":
                break
        rest = _events(http.get(seen[0].data["streamUrl"], headers={"Last-Event-ID": seen[-1].id}))
    assert [e.kind for e in rest] == ["text", "text", "final"]
    assert rest[-1].data["response"] == "".join(e.data["text"] for e in rest if e.kind == "text")
    assert rest[-1].data["response"].startswith("Lima: ")


def test_every_agent_route_is_served_with_http_streams_too(host_client, chat_script, unique_session):
    """`http_streams=True` registers the same route table as the classic app (fork included)."""
    chat_script.set({"steps": [{"chunks": ["one"]}, {"chunks": ["two"]}]})
    for message in ("first", "second"):
        assert (
            host_client.post(RUN, json={"message": message, "sessionId": unique_session}).status_code == 200
        )
    forked = host_client.post(
        f"/api/agents/WeatherAgent/{unique_session}/fork",
        json={"turn": 1, "session_id": f"{unique_session}-f"},
    )
    assert forked.status_code == 201, forked.text
    state = host_client.get(f"/api/agents/WeatherAgent/{unique_session}-f").json()
    assert [m["content"] for m in state["conversation_history"]] == ["first", "one"]
    assert host_client.delete(f"/api/agents/WeatherAgent/{unique_session}-f").status_code == 204
