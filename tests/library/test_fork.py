"""Forking a session (issue 13, part 4): the `fork`/`seed` entity operations and the fork route,
driven through the app's registered functions with the entity JSON protocol."""

import json

import pytest

from durableagent.state import AgentState, turn_numbers
from fakes import ScriptedChatClient

from .conftest import make_agent


def _echo_agent():
    def echo(request):
        return {"text": f"echo: {request.messages[-1].text}"}

    return make_agent(ScriptedChatClient(rules=[{"when": lambda request: True, "then": echo}]))


async def _conversation(host, key: str, messages: list[str]) -> None:
    for message in messages:
        status, body = await host.run("WeatherAgent", {"message": message, "sessionId": key})
        assert status == 200, body


def test_turns_are_a_request_and_what_answers_it():
    entries = [
        {"role": "user", "correlation_id": "a"},
        {"role": "assistant", "correlation_id": "a"},
        {"role": "system", "correlation_id": "b"},
        {"role": "assistant", "correlation_id": "b", "status": "error"},
        {"role": "assistant", "correlation_id": "orphan"},
        {"role": "user", "correlation_id": "c"},
    ]
    assert turn_numbers(entries) == [1, 1, 2, 2, 3, 4]


def test_first_turns_and_their_range():
    state = AgentState()
    for i in range(3):
        state.add_user_message(f"m{i}", f"c{i}")
        state.add_assistant_message(f"r{i}")
    assert state.turn_count == 3
    assert [e["content"] for e in state.first_turns(2)] == ["m0", "r0", "m1", "r1"]
    for bad in (0, 4, True, "2", None):
        with pytest.raises(ValueError, match="out of range: the session has 3 turn"):
            state.first_turns(bad)


def test_seed_never_overwrites_and_survives_the_stored_form():
    source = AgentState()
    for i in range(40):  # past the recent window: the copy spans compressed chunks
        source.add_user_message(f"m{i}", f"c{i}")
        source.add_assistant_message(f"r{i}")
    copy = source.first_turns(30)
    target = AgentState()
    assert target.seed(copy, {"session_id": "src", "turn": 30, "fork_id": "f"})
    restored = AgentState.from_dict(json.loads(json.dumps(target.to_dict())))
    assert restored.conversation_history == copy and restored.turn_count == 30
    assert restored.get_state()["forked_from"]["session_id"] == "src"
    assert not restored.seed(source.first_turns(1), {"fork_id": "g"})
    assert restored.turn_count == 30
    restored.reset()
    assert restored.forked_from is None and "forked_from" not in restored.get_state()


async def test_fork_copies_the_first_turns_into_a_new_session(build):
    _, host = build(_echo_agent())
    await _conversation(host, "src", ["one", "two", "three"])
    status, body = await host.fork("WeatherAgent", "src", {"turn": 2, "session_id": "copy"})
    assert status == 201, body
    assert body["sessionId"] == body["session_id"] == "copy" and body["source"] == "src"
    assert body["turn"] == 2 and body["message_count"] == 4
    assert host.last_response.headers["Location"] == body["statusUrl"]
    assert body["statusUrl"].endswith("/api/agents/WeatherAgent/copy")
    _, source = await host.state("WeatherAgent", "src")
    _, fork = await host.state("WeatherAgent", "copy")
    assert fork["conversation_history"] == source["conversation_history"][:4]
    assert fork["forked_from"]["session_id"] == "src" and fork["forked_from"]["turn"] == 2
    # The fork is a session of its own: a new turn continues from the copied history.
    await _conversation(host, "copy", ["other"])
    _, fork = await host.state("WeatherAgent", "copy")
    assert [e["content"] for e in fork["conversation_history"]][-2:] == ["other", "echo: other"]
    _, source = await host.state("WeatherAgent", "src")
    assert source["message_count"] == 6 and "fork_failures" not in source


async def test_fork_without_a_target_id_makes_one(build):
    _, host = build(_echo_agent())
    await _conversation(host, "src", ["one"])
    status, body = await host.fork("WeatherAgent", "src", {"turn": 1})
    assert status == 201, body
    status, state = await host.state("WeatherAgent", body["sessionId"])
    assert status == 200 and state["message_count"] == 2


async def test_fork_never_overwrites_a_session_with_turns(build):
    _, host = build(_echo_agent())
    await _conversation(host, "src", ["one", "two"])
    await _conversation(host, "taken", ["mine"])
    status, body = await host.fork("WeatherAgent", "src", {"turn": 1, "session_id": "taken"})
    assert status == 409 and body["status"] == "error", body
    assert "'taken' already exists with 1 turn" in body["error"] and body["sessionId"] == "taken"
    _, taken = await host.state("WeatherAgent", "taken")
    assert [e["content"] for e in taken["conversation_history"]] == ["mine", "echo: mine"]


async def test_the_seed_refuses_a_session_that_got_turns_after_the_check(build):
    """The route's check and the copy race a turn on the target: the entity decides, never overwriting."""
    _, host = build(_echo_agent())
    await _conversation(host, "src", ["one"])
    await _conversation(host, "late", ["mine"])
    chunk = AgentState.from_dict(json.loads(host.states[("dafx-weatheragent", "src")]))
    from durableagent.state import HistoryChunk

    seed = {
        "fork_id": "f1",
        "source": "src",
        "turn": 1,
        "history": HistoryChunk.pack(chunk.first_turns(1)).to_dict(),
    }
    output = host.run_batch("dafx-WeatherAgent", "late", [("seed", seed)])
    result = json.loads(output["results"][0]["result"])
    assert result["status"] == "error" and "never overwrites" in result["error"]
    _, late = await host.state("WeatherAgent", "late")
    assert [e["content"] for e in late["conversation_history"]] == ["mine", "echo: mine"]


async def test_a_repeated_seed_is_applied_once(build):
    _, host = build(_echo_agent())
    await _conversation(host, "src", ["one", "two"])
    output = host.run_batch(
        "dafx-WeatherAgent", "src", [("fork", {"turn": 1, "target": "t", "fork_id": "f1"})]
    )
    (sent,) = output["signals"]
    assert sent["target"] == {"name": "dafx-weatheragent", "key": "t"} and sent["name"] == "seed"
    seed = json.loads(json.loads(sent["input"]))
    for _ in range(2):  # delivered twice, as a host that crashed before its commit would
        host.run_batch("dafx-WeatherAgent", "t", [("seed", seed)])
    state = AgentState.from_dict(json.loads(host.states[("dafx-weatheragent", "t")]))
    assert state.message_count == 2


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        ({"turn": 3}, 400, "turn 3 is out of range: session 'src' has 2 turn(s)"),
        ({"turn": 0}, 400, "'turn' must be a whole number"),
        ({"turn": 1.5}, 400, "'turn' must be a whole number"),
        ({"turn": "1"}, 400, "'turn' must be a whole number"),
        ({"turn": True}, 400, "'turn' must be a whole number"),
        ({}, 400, "'turn' is required"),
        ([1], 400, "must be a JSON object"),
        ("{nope", 400, "not valid JSON"),
        ("", 400, "request body is empty"),
        ({"turn": 1, "extra": 1}, 400, "unknown field(s) 'extra'"),
        ({"turn": 1, "session_id": "src"}, 400, "cannot be forked into itself"),
        ({"turn": 1, "session_id": "a/b"}, 400, "invalid 'sessionId'"),
        ({"turn": 1, "session_id": "x", "sessionId": "y"}, 400, "different sessions"),
    ],
)
async def test_bad_fork_requests_are_4xx_json(build, payload, status, needle):
    _, host = build(_echo_agent())
    await _conversation(host, "src", ["one", "two"])
    code, body = await host.fork("WeatherAgent", "src", payload)
    assert code == status and body["status"] == "error" and needle in body["error"], body
    _, source = await host.state("WeatherAgent", "src")
    assert source["message_count"] == 4


async def test_forking_an_unknown_session_or_agent_is_404(build):
    _, host = build(_echo_agent())
    code, body = await host.fork("WeatherAgent", "nobody", {"turn": 1})
    assert code == 404 and "session 'nobody'" in body["error"]
    code, body = await host.fork("NoSuchAgent", "nobody", {"turn": 1})
    assert code == 404 and "unknown agent" in body["error"]
    assert host.states == {}


async def test_a_fork_the_source_refuses_is_recorded(build):
    """A source reset between the route's check and the `fork` operation: the entity refuses, keeps
    why in its state, and the route answers with it."""
    _, host = build(_echo_agent())
    await _conversation(host, "src", ["one", "two"])
    output = host.run_batch(
        "dafx-WeatherAgent", "src", [("fork", {"turn": 5, "target": "t", "fork_id": "f9"})]
    )
    assert output["signals"] == []
    state = AgentState.from_dict(json.loads(host.states[("dafx-weatheragent", "src")]))
    assert state.fork_failure("f9") == "turn 5 is out of range: the session has 2 turn(s)"
    assert ("dafx-weatheragent", "t") not in host.states


async def test_a_fork_of_a_session_reset_meanwhile_is_answered_not_left_waiting(build):
    _, host = build(_echo_agent())
    await _conversation(host, "src", ["one"])
    host.run_batch("dafx-WeatherAgent", "src", [("reset", None)])
    host.run_batch("dafx-WeatherAgent", "src", [("fork", {"turn": 1, "target": "t", "fork_id": "f2"})])
    state = AgentState.from_dict(json.loads(host.states[("dafx-weatheragent", "src")]))
    assert state.fork_failure("f2") == "turn 1 is out of range: the session has 0 turn(s)"
    # A fork of a session that does not exist creates nothing.
    host.run_batch("dafx-WeatherAgent", "ghost", [("fork", {"turn": 1, "target": "t", "fork_id": "f3"})])
    assert ("dafx-weatheragent", "ghost") not in host.states


def before_fork(host, key: str, operation: tuple[str, object]) -> None:
    """Apply `operation` to session `key` between the route's checks and its `fork` signal (a race)."""
    signal = host.signal_entity

    async def racing(entity_id, name, value=None):
        if name == "fork":
            host.run_batch("dafx-WeatherAgent", key, [operation])
        await signal(entity_id, name, value)

    host.signal_entity = racing


async def test_the_route_answers_why_the_source_refused(build):
    """The source is reset after the route's check and before its `fork` runs: 400 with the reason."""
    _, host = build(_echo_agent())
    await _conversation(host, "src", ["one"])
    before_fork(host, "src", ("reset", None))
    status, body = await host.fork("WeatherAgent", "src", {"turn": 1, "session_id": "t"})
    assert status == 400, body
    assert body["error"] == "the fork failed: turn 1 is out of range: the session has 0 turn(s)"
    assert ("dafx-weatheragent", "t") not in host.states


async def test_the_route_answers_409_when_the_target_got_a_turn_first(build):
    _, host = build(_echo_agent())
    await _conversation(host, "src", ["one"])
    before_fork(host, "t", ("run_agent", {"message": "mine", "correlation_id": "m1"}))
    status, body = await host.fork("WeatherAgent", "src", {"turn": 1, "session_id": "t"})
    assert status == 409 and "'t' already exists with 1 turn(s)" in body["error"], body
    await host.drain()
    _, target = await host.state("WeatherAgent", "t")
    assert [e["content"] for e in target["conversation_history"]] == ["mine", "echo: mine"]
    assert "forked_from" not in target
