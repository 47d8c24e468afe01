"""A hostile but realistic client of reply streams and forks, through real HTTP on the streaming sample
(a real local host on Azurite): odd `Accept` and `Last-Event-ID` values, turns queued behind
others, several readers, clients that leave, failing turns, Microsoft's request shapes, racing
forks, a fork racing the delete of its source and a host killed during a fork. Every bad input is
a 4xx JSON naming the problem; no turn, reply or copied turn is lost or changed."""

from __future__ import annotations

import threading
from typing import Any

import httpx
import pytest

from harness.reply_stream import ReplyEvent

from .test_sse import RUN, _events

pytestmark = pytest.mark.integration

AGENT = "/api/agents/WeatherAgent"
EVENTS = {"Accept": "text/event-stream"}


def _stream_run(http: httpx.Client, message: str, session: str, **headers: str) -> list[ReplyEvent]:
    response = http.post(RUN, json={"message": message, "sessionId": session}, headers={**EVENTS, **headers})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    return _events(response)


def _text(events: list[ReplyEvent]) -> str:
    return "".join(e.data["text"] for e in events if e.kind == "text")


def _history(http: httpx.Client, session: str) -> list[tuple[str, str]]:
    state = http.get(f"{AGENT}/{session}").json()
    return [(m["role"], m["content"]) for m in state["conversation_history"]]


def _json_error(response: httpx.Response, status: int, *words: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert body["status"] == "error" and all(w in body["error"] for w in words), body
    return body


# -- Accept ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "streams"),
    [
        ("text/event-stream", True),
        ("TEXT/EVENT-STREAM; charset=utf-8", True),
        ("application/json;q=0.5, text/event-stream", True),
        ("text/event-stream, */*", True),
        ("text/event-stream;q=0.5, application/json", False),
        ("text/event-stream;q=0", False),
        ("text/event-stream;q=0.1, */*", False),
        ("*/*", False),
        ("", False),
    ],
)
def test_accept_quality_values_choose_events_or_json(
    host_client, chat_script, unique_session, accept, streams
):
    chat_script.set({"steps": [{"chunks": ["a", "b"]}]})
    reply = host_client.post(
        RUN, json={"message": "hi", "sessionId": unique_session}, headers={"Accept": accept}
    )
    assert reply.status_code == 200
    if streams:
        assert reply.headers["content-type"].startswith("text/event-stream")
        assert _events(reply)[-1].data["response"] == "ab"
    else:
        assert (
            reply.headers["content-type"].startswith("application/json") and reply.json()["response"] == "ab"
        )


def test_a_text_request_that_prefers_text_gets_text_not_events(host_client, chat_script, unique_session):
    chat_script.set({"steps": [{"chunks": ["plain ", "reply"]}]})
    reply = host_client.post(
        f"{RUN}?thread_id={unique_session}",
        content="hi",
        headers={"Content-Type": "text/plain", "Accept": "text/event-stream;q=0.1, text/plain"},
    )
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/plain")
    assert reply.text == "plain reply" and reply.headers["x-ms-session-id"] == unique_session


def test_microsofts_request_shapes_stream_too(host_client, chat_script, unique_session):
    """Plain-text body, `thread_id` in the query, `x-ms-wait-for-response: false`: the events still
    end with the stored reply, under the session the caller named."""
    chat_script.set({"steps": [{"chunks": ["one ", "two"]}]})
    reply = host_client.post(
        f"{RUN}?thread_id={unique_session}",
        content="hello there",
        headers={**EVENTS, "Content-Type": "text/plain", "x-ms-wait-for-response": "false"},
    )
    events = _events(reply)
    assert [e.kind for e in events] == ["accepted", "text", "text", "final"]
    final = events[-1].data
    assert final["session_id"] == unique_session and final["message"] == "hello there"
    assert final["response"] == "one two" == _text(events)
    assert _history(host_client, unique_session) == [("user", "hello there"), ("assistant", "one two")]
    bad = host_client.post(RUN, json={"message": "x"}, headers={**EVENTS, "x-ms-wait-for-response": "maybe"})
    _json_error(bad, 400, "x-ms-wait-for-response")


# -- Last-Event-ID and cursors ---------------------------------------------------------------------


def _finished(http: httpx.Client, chat_script: Any, session: str) -> tuple[str, list[ReplyEvent]]:
    """A streamed turn of three chunks, ended: (its stream URL, its events)."""
    chat_script.set({"steps": [{"chunks": ["x", "y", "z"]}]})
    events = _stream_run(http, "hi", session)
    return events[0].data["streamUrl"], events


@pytest.fixture
def finished_turn(host_client, chat_script, unique_session) -> tuple[str, list[ReplyEvent]]:
    return _finished(host_client, chat_script, unique_session)


@pytest.mark.parametrize(
    "value", ["-1.0", "1.2.3", ".1", "1.", "abc", "².1", "1" * 21 + ".1", "9" * 5000 + ".1", "1.x"]
)
def test_a_bad_last_event_id_or_cursor_is_a_json_400(host_client, finished_turn, value):
    stream_url, _ = finished_turn
    _json_error(host_client.get(stream_url, headers={"Last-Event-ID": value.encode()}), 400, "Last-Event-ID")
    _json_error(host_client.get(stream_url, params={"cursor": value}), 400, "cursor")


def test_resuming_after_final_sends_the_final_event_alone(host_client, finished_turn):
    """An EventSource reconnects by itself when the body ends, with the last id it saw (`final`):
    it must not get the chunks again."""
    stream_url, events = finished_turn
    for resumed in (
        host_client.get(stream_url, headers={"Last-Event-ID": "final"}),
        host_client.get(stream_url, params={"cursor": "final"}),
    ):
        again = _events(resumed)
        assert [e.kind for e in again] == ["final"] and again[0].data == events[-1].data


def test_ids_outside_the_turns_attempt_resume_without_losing_the_reply(host_client, finished_turn):
    stream_url, events = finished_turn
    chunks = [e for e in events if e.kind == "text"]
    older = _events(host_client.get(stream_url, headers={"Last-Event-ID": "1.0"}))
    # an id of an attempt before this one: start over (reset), then the whole turn
    assert [e.kind for e in older] == ["reset", "text", "text", "text", "final"]
    past_end = f"{chunks[-1].id.split('.')[0]}.99999999"
    newer = _events(host_client.get(stream_url, headers={"Last-Event-ID": "99999999999999999999.99999999"}))
    for later in (newer, _events(host_client.get(stream_url, headers={"Last-Event-ID": past_end}))):
        assert [e.kind for e in later] == ["final"] and later[0].data == events[-1].data
    padded = _events(host_client.get(stream_url, params={"cursor": f"  {chunks[0].id}  "}))
    assert [e.data for e in padded if e.kind == "text"] == [c.data for c in chunks[1:]]


def test_unknown_and_foreign_correlation_ids_are_json_errors(host_client, chat_script, finished_turn):
    stream_url, events = finished_turn
    correlation = events[0].data["correlationId"]
    other = f"{events[0].data['sessionId']}-other"
    chat_script.set({"steps": ["other"]})
    assert host_client.post(RUN, json={"message": "hi", "sessionId": other}).status_code == 200
    base = f"{AGENT}/{other}/stream"
    _json_error(host_client.get(f"{base}/{correlation}"), 404, correlation, other)  # another session's turn
    _json_error(host_client.get(f"{base}/no-such-turn"), 404, "no-such-turn")
    _json_error(host_client.get(f"{base}/%20"), 400, "correlation id")
    _json_error(host_client.get(f"{base}/{'x' * 300}"), 400, "correlation id")
    _json_error(host_client.get(f"{AGENT}/never-was/stream/{correlation}"), 404, "never-was")
    _json_error(host_client.get(f"/api/agents/Nobody/{other}/stream/{correlation}"), 404, "unknown agent")


def test_the_stream_of_a_deleted_or_reset_sessions_turn_is_gone(host_client, chat_script, unique_session):
    """The stream outlives its session until it expires: served as the session's, it replayed the
    deleted turn's chunks and then waited the whole run timeout for a reply that can never come."""
    stream_url, events = _finished(host_client, chat_script, unique_session)
    assert host_client.delete(f"{AGENT}/{unique_session}").status_code == 204
    _json_error(host_client.get(stream_url), 404, "deleted or reset", unique_session)
    _json_error(host_client.get(stream_url, headers={"Last-Event-ID": events[1].id}), 404, "deleted or reset")
    # the same session id used again is a new conversation; the old turn stays gone
    chat_script.set({"steps": ["new"]})
    assert host_client.post(RUN, json={"message": "again", "sessionId": unique_session}).status_code == 200
    _json_error(host_client.get(stream_url), 404, "deleted or reset")


# -- concurrency -----------------------------------------------------------------------------------


def _in_thread(fn: Any, *args: Any, **kwargs: Any) -> tuple[threading.Thread, list[Any]]:
    out: list[Any] = []
    thread = threading.Thread(target=lambda: out.append(fn(*args, **kwargs)), daemon=True)
    thread.start()
    return thread, out


class LiveTurn:
    """A streamed turn read in a thread as its events arrive; `running` is set at its first chunk
    (the readiness probe for 'this turn is running now': the state shows a turn only when done)."""

    def __init__(self, http: httpx.Client, message: str, session: str, key: str) -> None:
        self.events: list[ReplyEvent] = []
        self.running = threading.Event()
        body = {"message": message, "sessionId": session}
        self._thread = threading.Thread(
            target=self._read, args=(http, body, {**EVENTS, "Idempotency-Key": key}), daemon=True
        )
        self._thread.start()
        assert self.running.wait(30), f"no chunk of {message!r} arrived: {self.events}"

    def _read(self, http: httpx.Client, body: dict[str, Any], headers: dict[str, str]) -> None:
        from httpx_sse import EventSource

        from harness.reply_stream import _event

        with http.stream("POST", RUN, json=body, headers=headers) as response:
            for sse in EventSource(response).iter_sse():
                self.events.append(_event(sse.event, sse.data, sse.id))
                if sse.event in ("text", "final"):
                    self.running.set()

    def finished(self) -> list[ReplyEvent]:
        self._thread.join(30)
        assert self.events and self.events[-1].kind == "final", self.events
        return self.events


def _first_event(http: httpx.Client, message: str, session: str, key: str) -> ReplyEvent:
    """POST a streamed turn and leave after its `accepted` event."""
    from httpx_sse import EventSource

    from harness.reply_stream import _event

    body = {"message": message, "sessionId": session}
    with http.stream("POST", RUN, json=body, headers={**EVENTS, "Idempotency-Key": key}) as response:
        sse = next(EventSource(response).iter_sse())
        return _event(sse.event, sse.data, sse.id)


def test_a_turn_queued_behind_another_can_be_resumed_from_its_stream_url(
    function_host, host_client, chat_script, unique_session
):
    """The accepted event hands out `streamUrl` before the turn starts: while the session's earlier
    turn still runs, that URL must stream the queued turn (it answered 404 'no turn')."""
    chat_script.set({"steps": [{"chunks": ["s", "l", "o", "w"], "chunk_delay": 0.3}, {"chunks": ["next"]}]})
    with httpx.Client(base_url=function_host.url, timeout=30) as http:
        first = LiveTurn(http, "first", unique_session, f"{unique_session}-1")
        accepted = _first_event(http, "second", unique_session, f"{unique_session}-2")
        resumed = http.get(accepted.data["streamUrl"])
        assert _text(first.finished()) == "slow"
    assert resumed.status_code == 200, resumed.text
    events = _events(resumed)
    assert [e.kind for e in events] == ["text", "final"] and events[0].data == {"text": "next"}
    assert events[-1].data["message"] == "second" and events[-1].data["response"] == "next"
    assert _history(host_client, unique_session)[2:] == [("user", "second"), ("assistant", "next")]


def test_two_readers_and_a_concurrent_turn_each_get_their_own_events(
    function_host, host_client, chat_script, unique_session
):
    chat_script.set({"steps": [{"chunks": ["a", "b", "c"], "chunk_delay": 0.3}, {"chunks": ["other"]}]})
    with httpx.Client(base_url=function_host.url, timeout=30) as http:
        writer = LiveTurn(http, "slow", unique_session, "t1")
        reader, read = _in_thread(lambda: _events(http.get(f"{AGENT}/{unique_session}/stream/t1")))
        second = _stream_run(http, "quick", unique_session, **{"Idempotency-Key": "t2"})
        first = writer.finished()
        reader.join(30)
    (resumed,) = read
    assert _text(first) == "abc" == first[-1].data["response"] == resumed[-1].data["response"]
    assert _text(resumed) == "abc"  # the second reader replays from the start, no reset
    assert [e.kind for e in resumed].count("reset") == 0
    assert _text(second) == "other" == second[-1].data["response"]
    assert second[-1].data["message_count"] == 4
    assert _history(host_client, unique_session) == [
        ("user", "slow"),
        ("assistant", "abc"),
        ("user", "quick"),
        ("assistant", "other"),
    ]


def test_a_retried_key_while_its_turn_streams_runs_it_once(
    function_host, host_client, chat_script, unique_session
):
    chat_script.set({"steps": [{"chunks": ["o", "n", "c", "e"], "chunk_delay": 0.3}]})
    with httpx.Client(base_url=function_host.url, timeout=30) as http:
        first = LiveTurn(http, "hi", unique_session, "k")
        retry = _stream_run(http, "hi", unique_session, **{"Idempotency-Key": "k"})
        assert _text(retry) == "once" == _text(first.finished()) == retry[-1].data["response"]
    assert _history(host_client, unique_session) == [("user", "hi"), ("assistant", "once")]


def test_a_client_leaving_mid_stream_then_the_next_turn(
    function_host, host_client, chat_script, unique_session
):
    chat_script.set({"steps": [{"chunks": ["left ", "behind"], "chunk_delay": 0.3}, {"chunks": ["fresh"]}]})
    with httpx.Client(base_url=function_host.url, timeout=30) as http:
        accepted = _first_event(http, "first", unique_session, f"{unique_session}-1")
        second = _stream_run(http, "second", unique_session)
        replay = _events(http.get(accepted.data["streamUrl"]))
    # the second turn waited for the first, and streams only its own chunks
    assert [e.kind for e in second] == ["accepted", "text", "final"] and _text(second) == "fresh"
    assert _text(replay) == "left behind" == replay[-1].data["response"]
    assert _history(host_client, unique_session) == [
        ("user", "first"),
        ("assistant", "left behind"),
        ("user", "second"),
        ("assistant", "fresh"),
    ]


def test_a_failing_turn_streams_an_error_final_and_the_session_goes_on(
    host_client, chat_script, unique_session
):
    chat_script.set({"steps": [{"error": "model exploded"}, {"chunks": ["fine ", "again"]}]})
    failed = _stream_run(host_client, "boom", unique_session)
    assert [e.kind for e in failed] == ["accepted", "final"]
    assert failed[-1].data["status"] == "error" and "model exploded" in failed[-1].data["error"]
    replay = _events(host_client.get(failed[0].data["streamUrl"]))
    assert replay[-1].data == failed[-1].data
    plain = host_client.post(RUN, json={"message": "again", "sessionId": unique_session})
    assert plain.status_code == 200 and plain.json()["response"] == "fine again"
    assert plain.json()["message_count"] == 4


# -- fork ------------------------------------------------------------------------------------------


def _two_turns(http: httpx.Client, chat_script: Any, session: str) -> None:
    chat_script.set({"steps": [{"chunks": ["one"]}, {"chunks": ["two"]}]})
    for message in ("first", "second"):
        assert http.post(RUN, json={"message": message, "sessionId": session}).status_code == 200


def _fork(http: httpx.Client, source: str, body: Any) -> httpx.Response:
    return http.post(f"{AGENT}/{source}/fork", json=body)


FIRST_TURN = [("user", "first"), ("assistant", "one")]
BOTH_TURNS = [*FIRST_TURN, ("user", "second"), ("assistant", "two")]


def test_concurrent_forks_into_one_target_one_wins_the_rest_409(
    function_host, host_client, chat_script, unique_session
):
    _two_turns(host_client, chat_script, unique_session)
    target = f"{unique_session}-t"
    with httpx.Client(base_url=function_host.url, timeout=60) as http:
        threads = [
            _in_thread(_fork, http, unique_session, {"turn": 1 + i % 2, "session_id": target})
            for i in range(4)
        ]
        for thread, _ in threads:
            thread.join(60)
    answers = [out[0] for _, out in threads]
    assert sorted(a.status_code for a in answers) == [201, 409, 409, 409], [a.text for a in answers]
    winner = next(a.json() for a in answers if a.status_code == 201)
    for loser in (a for a in answers if a.status_code == 409):
        _json_error(loser, 409, target, "never overwrites")
    state = host_client.get(f"{AGENT}/{target}").json()
    assert state["forked_from"]["turn"] == winner["turn"]
    assert _history(host_client, target) == BOTH_TURNS[: 2 * winner["turn"]]
    assert _history(host_client, unique_session) == BOTH_TURNS


def test_fork_of_a_session_mid_turn_copies_only_finished_turns(
    function_host, host_client, chat_script, unique_session
):
    chat_script.set({"steps": [{"chunks": ["one"]}, {"chunks": ["t", "w", "o"], "chunk_delay": 0.3}]})
    assert host_client.post(RUN, json={"message": "first", "sessionId": unique_session}).status_code == 200
    with httpx.Client(base_url=function_host.url, timeout=30) as http:
        turn = LiveTurn(http, "second", unique_session, f"{unique_session}-2")
        too_far = _fork(http, unique_session, {"turn": 2, "session_id": f"{unique_session}-x"})
        forked = _fork(http, unique_session, {"turn": 1, "session_id": f"{unique_session}-f"})
        assert _text(turn.finished()) == "two"
    _json_error(too_far, 400, "out of range")
    assert forked.status_code == 201, forked.text
    assert _history(host_client, f"{unique_session}-f") == FIRST_TURN
    assert _history(host_client, unique_session) == [*FIRST_TURN, ("user", "second"), ("assistant", "two")]
    assert host_client.get(f"{AGENT}/{unique_session}-x").status_code == 404


def test_a_fork_racing_the_delete_of_its_source_is_answered_not_left_accepted(
    function_host, host_client, chat_script, unique_session
):
    """A fork whose source is deleted before the fork runs can never happen: it used to wait the
    whole run timeout and answer 202 'accepted'. The source is busy with a turn, so the delete and
    then the fork queue behind it in that order, after the fork route saw the source."""
    _two_turns(host_client, chat_script, unique_session)
    chat_script.set({"steps": [{"chunks": ["th", "ree"], "chunk_delay": 0.5}]})
    target = f"{unique_session}-t"
    with httpx.Client(base_url=function_host.url, timeout=120) as http:
        turn = LiveTurn(http, "third", unique_session, f"{unique_session}-3")
        delete = http.post(
            f"/runtime/webhooks/durabletask/entities/dafx-weatheragent/{unique_session}?op=delete"
        )
        assert delete.status_code == 202, delete.text
        forked = _fork(http, unique_session, {"turn": 2, "session_id": target})
        assert _text(turn.finished()) == "three"
    # Under load the delete may already be applied when the route looks (then: not found); either
    # way the answer is a 404 naming the session, never a 202 after the whole run timeout.
    _json_error(forked, 404, unique_session)
    assert "deleted before the fork" in forked.json()["error"] or "not found" in forked.json()["error"]
    assert host_client.get(f"{AGENT}/{target}").status_code == 404
    assert host_client.get(f"{AGENT}/{unique_session}").status_code == 404


def test_deleting_the_source_after_a_fork_leaves_the_fork(host_client, chat_script, unique_session):
    _two_turns(host_client, chat_script, unique_session)
    target = f"{unique_session}-t"
    assert _fork(host_client, unique_session, {"turn": 2, "session_id": target}).status_code == 201
    assert host_client.delete(f"{AGENT}/{unique_session}").status_code == 204
    _json_error(_fork(host_client, unique_session, {"turn": 1}), 404, unique_session)
    assert _history(host_client, target) == BOTH_TURNS
    chat_script.set({"steps": [{"chunks": ["three"]}]})
    events = _stream_run(host_client, "third", target)
    assert events[-1].data["message_count"] == 6 and _text(events) == "three"


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        ({"turn": 0}, 400, ["'turn'"]),
        ({"turn": True}, 400, ["'turn'"]),
        ({"turn": 1.0}, 400, ["'turn'"]),
        ({"turn": "1"}, 400, ["'turn'"]),
        ({"turn": 10**30}, 400, ["out of range"]),
        ({"turn": 1, "session_id": "a/b"}, 400, ["session"]),
        ({"turn": 1, "session_id": "x" * 300}, 400, ["session"]),
        ({"turn": 1, "session_id": "a", "sessionId": "b"}, 400, ["different"]),
        ({"turn": 1, "extra": 1}, 400, ["unknown field"]),
        ([1], 400, ["JSON object"]),
    ],
)
def test_odd_fork_bodies_are_json_errors_and_change_nothing(
    host_client, chat_script, unique_session, body, status, words
):
    _two_turns(host_client, chat_script, unique_session)
    _json_error(_fork(host_client, unique_session, body), status, *words)
    _json_error(_fork(host_client, unique_session, {"turn": 1, "session_id": unique_session}), 400, "itself")
    assert _history(host_client, unique_session) == BOTH_TURNS


def test_a_host_killed_during_a_fork_copies_once_or_not_at_all(function_host, chat_script, unique_session):
    """Wherever the kill lands (before the fork ran, between the source's commit and the seed, after),
    the target is afterwards absent or an exact copy, and the source is unchanged; the fork's
    retry is then a 201 or a 409, never a second copy."""
    target = f"{unique_session}-t"
    with httpx.Client(base_url=function_host.url, timeout=30) as http:
        _two_turns(http, chat_script, unique_session)
        forking, _ = _in_thread(
            _swallow_transport_errors, _fork, http, unique_session, {"turn": 2, "session_id": target}
        )
        function_host.process.kill()
        forking.join(30)
    function_host.restart()
    with httpx.Client(base_url=function_host.url, timeout=60) as http:
        assert _history(http, unique_session) == BOTH_TURNS
        retry = _fork(http, unique_session, {"turn": 2, "session_id": target})
        assert retry.status_code in (201, 409), retry.text
        assert _history(http, target) == BOTH_TURNS
        state = http.get(f"{AGENT}/{target}").json()
        assert state["forked_from"]["session_id"] == unique_session and state["message_count"] == 4


def _swallow_transport_errors(fn: Any, *args: Any) -> Any:
    try:
        return fn(*args)
    except httpx.TransportError as exc:
        return exc
