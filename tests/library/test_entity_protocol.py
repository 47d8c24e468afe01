"""The entity function driven with the JSON context the Functions host sends."""

import json

import pytest
from agent_framework import Agent, AgentResponse, FunctionTool, HistoryProvider, Message, tool

from durableagent import AgentState
from durableagent.state import RECENT_ENTRIES
from fakes import ScriptedChatClient

from .conftest import get_weather, make_agent

ENTITY = "dafx-weatheragent"


def _stored(text):
    """A stored state as the HTTP API shows it (the stored form folds older entries into a text)."""
    return AgentState.from_dict(json.loads(text)).get_state()


def _results(output):
    return [(r["isError"], json.loads(r["result"]) if r["result"] else None) for r in output["results"]]


def test_batch_of_operations_runs_in_order(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[{"text": "first"}, {"text": "second"}])))
    output = host.run_batch(
        ENTITY,
        "k",
        [
            ("run_agent", {"message": "one", "correlation_id": "c1"}),
            ("run_agent", {"message": "two", "correlation_id": "c2"}),
            ("get_state", None),
        ],
    )
    assert output["entityExists"] is True
    (e1, r1), (e2, r2), (e3, state) = _results(output)
    assert not (e1 or e2 or e3)
    assert (r1["response"], r2["response"]) == ("first", "second")
    assert [e["content"] for e in state["conversation_history"]] == ["one", "first", "two", "second"]
    assert _stored(output["entityState"]) == state


def test_redelivered_signal_is_not_applied_twice(build):
    fake = ScriptedChatClient(steps=[{"text": "only once"}])
    _, host = build(make_agent(fake))
    signal = ("run_agent", {"message": "hi", "correlation_id": "same"})
    host.run_batch(ENTITY, "k", [signal])
    output = host.run_batch(ENTITY, "k", [signal])
    state = json.loads(output["entityState"])
    assert state["message_count"] == 2 and len(fake.requests) == 1


def test_plain_string_input_is_a_message(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[{"text": "hello"}])))
    output = host.run_batch(ENTITY, "k", [("run_agent", "hi there")])
    assert _stored(output["entityState"])["conversation_history"][0]["content"] == "hi there"


def test_bad_input_and_unknown_operation_leave_state_untouched(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[{"text": "ok"}])))
    host.run_batch(ENTITY, "k", [("run_agent", {"message": "hi", "correlation_id": "c"})])
    before = host.states[(ENTITY, "k")]
    output = host.run_batch(
        ENTITY, "k", [("run_agent", {"message": ""}), ("run_agent", [1]), ("explode", None)]
    )
    results = _results(output)
    assert all(r["status"] == "error" for _, r in results)
    assert "unknown operation" in results[2][1]["error"]
    assert host.states[(ENTITY, "k")] == before


def test_reset_clears_history(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[{"text": "ok"}])))
    host.run_batch(ENTITY, "k", [("run_agent", {"message": "hi"})])
    output = host.run_batch(ENTITY, "k", [("reset", None), ("get_state", None)])
    assert _results(output)[1][1]["conversation_history"] == []


def test_unreadable_state_is_reported_and_not_overwritten(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[{"text": "ok"}])))
    host.states[(ENTITY, "k")] = json.dumps({"schema_version": 99, "conversation_history": []})
    output = host.run_batch(ENTITY, "k", [("run_agent", {"message": "hi"})])
    assert "unreadable" in _results(output)[0][1]["error"]
    assert json.loads(host.states[(ENTITY, "k")])["schema_version"] == 99


def test_cached_history_matches_the_stored_one_and_follows_outside_changes(build):
    fake = ScriptedChatClient(steps=[{"text": "one"}, {"text": "two"}, {"text": "three"}])
    _, host = build(make_agent(fake))
    host.run_batch(ENTITY, "k", [("run_agent", {"message": "a", "correlation_id": "c1"})])
    host.run_batch(ENTITY, "k", [("run_agent", {"message": "b", "correlation_id": "c2"})])
    assert [m.text for m in fake.requests[-1].messages] == ["a", "one", "b"]
    # Someone rewrites the stored state (another host, a restore): the next turn sees that history.
    state = _stored(host.states[(ENTITY, "k")])
    state["conversation_history"] = state["conversation_history"][:2]
    state["conversation_history"][0]["content"] = "rewritten"
    host.states[(ENTITY, "k")] = json.dumps(state)
    host.run_batch(ENTITY, "k", [("run_agent", {"message": "c", "correlation_id": "c3"})])
    assert [m.text for m in fake.requests[-1].messages] == ["rewritten", "one", "c"]


def test_a_turn_takes_the_state_it_stored_last_and_decodes_any_other_text(build, monkeypatch):
    """The state a session's last operation stored comes back as the same text: the next turn takes
    the object it was made from (no decoding, whose cost grows with the history). A text that
    differs at all (here: only its last reply, as a commit made elsewhere would) is decoded."""
    fake = ScriptedChatClient(steps=[{"text": "one"}, {"text": "two"}, {"text": "three"}])
    _, host = build(make_agent(fake))
    decoded: list[object] = []
    real = AgentState.from_dict.__func__
    monkeypatch.setattr(
        AgentState,
        "from_dict",
        classmethod(lambda cls, data, **kw: decoded.append(data) or real(cls, data, **kw)),
    )
    host.run_batch(ENTITY, "k", [("run_agent", {"message": "a", "correlation_id": "c1"})])
    host.run_batch(ENTITY, "k", [("run_agent", {"message": "b", "correlation_id": "c2"})])
    assert decoded == [None]  # the new session's empty state only
    assert [m.text for m in fake.requests[-1].messages] == ["a", "one", "b"]
    stored = json.loads(host.states[(ENTITY, "k")])
    stored["last_response"] = "changed elsewhere"
    host.states[(ENTITY, "k")] = json.dumps(stored)
    output = host.run_batch(ENTITY, "k", [("run_agent", {"message": "c", "correlation_id": "c3"})])
    assert decoded[1:] == [stored]
    assert _results(output)[0][1]["message_count"] == 6
    assert [m.text for m in fake.requests[-1].messages] == ["a", "one", "b", "two", "c"]


def test_read_only_and_bad_operations_create_no_session(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[])))
    output = host.run_batch(
        ENTITY, "fresh", [("get_state", None), ("explode", None), ("run_agent", {"x": 1})]
    )
    assert output["entityExists"] is False and (ENTITY, "fresh") not in host.states
    assert [r["status"] for _, r in _results(output)[1:]] == ["error", "error"]


def test_long_history_reaches_the_model_whole_on_a_warm_and_a_cold_worker(build):
    turns = 2 * RECENT_ENTRIES  # enough turns that older entries are folded into the stored text
    warm = ScriptedChatClient(default={"text": "ok"})
    _, host = build(make_agent(warm))
    for turn in range(turns):
        host.run_batch(ENTITY, "k", [("run_agent", {"message": f"m{turn}", "correlation_id": f"c{turn}"})])
    expected = [text for turn in range(turns) for text in (f"m{turn}", "ok")]
    assert [m.text for m in warm.requests[-1].messages] == expected[:-1]
    # A fresh worker (no cached history) reads the same history back from the stored state.
    cold = ScriptedChatClient(default={"text": "ok"})
    _, fresh = build(make_agent(cold))
    fresh.states = dict(host.states)
    fresh.run_batch(ENTITY, "k", [("run_agent", {"message": "last", "correlation_id": "cl"})])
    assert [m.text for m in cold.requests[-1].messages] == [*expected, "last"]
    assert _stored(fresh.states[(ENTITY, "k")])["message_count"] == 2 * turns + 2


class SessionRecordingAgent(Agent):
    """An Agent that notes the framework session each run gets."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.sessions: list = []

    def run(self, messages=None, *, stream=False, session=None, **kwargs):
        self.sessions.append(session)
        return super().run(messages, stream=stream, session=session, **kwargs)


class Silent:
    """A response callback: the entity then runs the agent streaming."""

    def on_streaming_response_update(self, update, context):
        pass

    def on_agent_response(self, response, context):
        pass


@pytest.mark.parametrize("callback", [None, Silent()], ids=["plain", "streaming"])
def test_each_turn_runs_in_a_fresh_framework_session(build, callback):
    tool_turn = {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Oslo"}, "call_id": "c"}]}
    fake = ScriptedChatClient(steps=[tool_turn, {"text": "cold"}, {"text": "bye"}])
    agent = SessionRecordingAgent(client=fake, name="WeatherAgent", tools=[get_weather])
    _, host = build(agent, default_callback=callback)
    host.run_batch(ENTITY, "oslo", [("run_agent", {"message": "weather?", "correlation_id": "c1"})])
    host.run_batch(ENTITY, "oslo", [("run_agent", {"message": "thanks", "correlation_id": "c2"})])
    first, second = agent.sessions
    assert first is not None and second is not None
    assert len({first.session_id, second.session_id, "oslo"}) == 3
    # Nothing carries over in the session: the model sees the stored history once, in order.
    roles = [m.role for m in fake.requests[-1].messages]
    assert roles == ["user", "assistant", "tool", "assistant", "user"]


@tool(approval_mode="always_require")
def delete_city(location: str) -> str:
    """Delete a city (needs approval)."""
    return f"deleted {location}"


@pytest.mark.parametrize(
    "setup",
    [
        {"tools": [get_weather, delete_city]},
        {"tools": [get_weather, FunctionTool(name="ask_user", description="the host answers", func=None)]},
        {"tools": [get_weather], "require_per_service_call_history_persistence": True},
    ],
    ids=["approval-required tool", "declaration-only tool", "per-service-call history"],
)
def test_agents_a_session_would_change_run_without_one(build, setup):
    """With these the framework keeps paused calls in the session, or acts on the history provider
    a session adds: the entity runs them exactly as before, with no session."""
    fake = ScriptedChatClient(steps=[{"text": "ok"}])
    agent = SessionRecordingAgent(client=fake, name="WeatherAgent", **setup)
    _, host = build(agent)
    host.run_batch(ENTITY, "k", [("run_agent", {"message": "hi", "correlation_id": "c1"})])
    assert agent.sessions == [None] and len(fake.requests) == 1


class StoreHistoryProvider(HistoryProvider):
    """Keeps history per session id outside the session, as a Redis or Cosmos DB provider does."""

    def __init__(self) -> None:
        super().__init__(source_id="store")
        self.saved: dict[str | None, list[Message]] = {}

    async def get_messages(self, session_id, **kwargs):
        return list(self.saved.get(session_id, []))

    async def save_messages(self, session_id, messages, **kwargs):
        self.saved.setdefault(session_id, []).extend(messages)


def test_a_session_keyed_history_provider_adds_nothing_to_the_stored_history(build):
    """The entity state is the conversation: the model must not see earlier turns twice."""
    fake = ScriptedChatClient(steps=[{"text": "r1"}, {"text": "r2"}, {"text": "r3"}])
    _, host = build(Agent(client=fake, name="WeatherAgent", context_providers=[StoreHistoryProvider()]))
    for turn, message in enumerate(["one", "two", "three"]):
        host.run_batch(ENTITY, "k", [("run_agent", {"message": message, "correlation_id": f"c{turn}"})])
    assert [m.text for m in fake.requests[-1].messages] == ["one", "r1", "two", "r2", "three"]


class PlainAgent:
    """A minimal agent: `run` only, no framework sessions."""

    id = name = "PlainAgent"
    description = None

    def __init__(self) -> None:
        self.seen: list[list[str]] = []

    async def run(self, messages=None, **kwargs):
        assert "session" not in kwargs
        self.seen.append([m.text for m in messages])
        return AgentResponse(messages=[Message(role="assistant", contents=[f"heard {len(messages)}"])])


def test_an_agent_without_sessions_still_gets_the_whole_history(build):
    agent = PlainAgent()
    _, host = build(agent)
    host.run_batch("dafx-plainagent", "k", [("run_agent", {"message": "one", "correlation_id": "c1"})])
    output = host.run_batch(
        "dafx-plainagent", "k", [("run_agent", {"message": "two", "correlation_id": "c2"})]
    )
    assert _results(output)[0][1]["response"] == "heard 3"
    assert agent.seen[-1] == ["one", "heard 1", "two"]


class SessionlessRunAgent(PlainAgent):
    """Not an agent-framework `Agent`: has `create_session` but a `run` that takes no session."""

    def create_session(self, **kwargs):
        raise AssertionError("only an agent-framework Agent is given a session")

    async def run(self, messages=None):
        return await super().run(messages)


def test_an_agent_that_is_not_a_framework_agent_is_not_given_a_session(build):
    agent = SessionlessRunAgent()
    _, host = build(agent)
    output = host.run_batch(
        "dafx-plainagent", "k", [("run_agent", {"message": "one", "correlation_id": "c1"})]
    )
    assert _results(output)[0][1]["response"] == "heard 1"
