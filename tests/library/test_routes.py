import asyncio
import json

import pytest

from durableagent import AgentFunctionApp, Polling
from fakes import ScriptedChatClient

from .conftest import DurableClientDouble, make_agent

WEATHER_TURN = [
    {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}, "call_id": "call_1"}]},
    {"text": "It is sunny in Paris.", "usage": {"input_tokens": 30, "output_tokens": 6, "total_tokens": 36}},
]


async def test_run_then_state_has_history_tool_calls_and_usage(build):
    fake = ScriptedChatClient(steps=WEATHER_TURN)
    _, host = build(make_agent(fake))
    status, body = await host.run("WeatherAgent", {"message": "weather in Paris?", "sessionId": "s1"})
    assert status == 200, body
    assert body["response"] == "It is sunny in Paris."
    assert body["status"] == "success"
    assert body["sessionId"] == "s1"
    assert body["message"] == "weather in Paris?"
    assert body["message_count"] == 2
    assert body["correlationId"]

    status, state = await host.state("WeatherAgent", "s1")
    assert status == 200
    assert state["message_count"] == 2
    assert state["last_response"] == "It is sunny in Paris."
    assert state["agent_type"] == "Agent"
    user, assistant = state["conversation_history"]
    assert (user["role"], user["content"]) == ("user", "weather in Paris?")
    assert user["correlation_id"] == assistant["correlation_id"] == body["correlationId"]
    assert assistant["agent_response"]["tool_calls"] == [
        {
            "call_id": "call_1",
            "name": "get_weather",
            "arguments": {"location": "Paris"},
            "result": "Sunny, 22 C in Paris",
        }
    ]
    assert assistant["agent_response"]["usage"]["total_tokens"] >= 36
    # The tool really ran and its result went back to the model.
    assert "Sunny, 22 C in Paris" in json.dumps([r.to_dict() for r in fake.requests])
    fake.assert_complete()


async def test_every_turn_sees_the_whole_history(build):
    fake = ScriptedChatClient(steps=[*WEATHER_TURN, {"text": "You asked about Paris."}])
    _, host = build(make_agent(fake))
    await host.run("WeatherAgent", {"message": "weather in Paris?", "sessionKey": "s2"})
    status, body = await host.run("WeatherAgent", {"message": "what did I ask?", "sessionId": "s2"})
    assert status == 200 and body["message_count"] == 4
    last = fake.requests[-1].messages
    texts = [m.text for m in last]
    assert (
        "weather in Paris?" in texts and "It is sunny in Paris." in texts and texts[-1] == "what did I ask?"
    )
    assert any(c.type == "function_result" for m in last for c in m.contents)


async def test_sessions_are_isolated_and_keys_are_random_when_absent(build):
    fake = ScriptedChatClient(steps=[{"text": "one"}, {"text": "two"}])
    _, host = build(make_agent(fake))
    _, a = await host.run("WeatherAgent", {"message": "hi"})
    _, b = await host.run("WeatherAgent", {"message": "hi"})
    assert a["sessionId"] != b["sessionId"]
    assert a["message_count"] == b["message_count"] == 2
    assert [m.text for m in fake.requests[1].messages] == ["hi"]


async def test_agent_names_are_case_insensitive(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[{"text": "ok"}])))
    status, body = await host.run("weatheragent", {"message": "hi", "sessionId": "ci"})
    assert status == 200
    status, _ = await host.state("WEATHERAGENT", "ci")
    assert status == 200


async def test_concurrent_requests_to_one_session_each_get_their_own_reply(build):
    def echo(request):
        return {"text": f"echo: {request.messages[-1].text}", "delay": 0.01}

    fake = ScriptedChatClient(rules=[{"when": lambda request: True, "then": echo}])
    _, host = build(make_agent(fake))
    messages = [f"message {i}" for i in range(8)]
    results = await asyncio.gather(
        *(host.run("WeatherAgent", {"message": m, "sessionId": "busy"}) for m in messages)
    )
    for message, (status, body) in zip(messages, results, strict=True):
        assert status == 200
        assert body["response"] == f"echo: {message}"
    _, state = await host.state("WeatherAgent", "busy")
    history = state["conversation_history"]
    assert len(history) == 16
    # Serialized: each user message is directly followed by its own reply.
    for user, reply in zip(history[::2], history[1::2], strict=True):
        assert user["correlation_id"] == reply["correlation_id"]
        assert reply["content"] == f"echo: {user['content']}"


async def test_model_error_is_a_failed_turn_and_the_session_keeps_working(build):
    fake = ScriptedChatClient(steps=[{"error": "model is down"}, {"text": "back again"}])
    _, host = build(make_agent(fake))
    status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": "err"})
    assert status == 500
    assert body["status"] == "error" and "model is down" in body["error"]
    _, state = await host.state("WeatherAgent", "err")
    assert state["conversation_history"][-1]["status"] == "error"
    assert "model is down" in state["conversation_history"][-1]["error"]
    status, body = await host.run("WeatherAgent", {"message": "again", "sessionId": "err"})
    assert (status, body["response"]) == (200, "back again")
    # The failed turn is not replayed to the model.
    assert [m.text for m in fake.requests[-1].messages] == ["again"]


async def test_tool_that_raises_is_a_failed_turn_and_the_session_keeps_working(build):
    def broken_tool(location: str) -> str:
        """Always fails."""
        raise RuntimeError("weather service offline")

    from agent_framework import Agent

    fake = ScriptedChatClient(
        steps=[
            {"tool_calls": [{"name": "broken_tool", "arguments": {"location": "Oslo"}}]},
            {"text": "Sorry."},
            {"text": "Still here."},
        ]
    )
    agent = Agent(client=fake, name="Flaky", tools=[broken_tool])
    _, host = build(agent)
    status, body = await host.run("Flaky", {"message": "weather in Oslo", "sessionId": "t"})
    assert status == 500 and body["status"] == "error"
    assert "broken_tool" in body["error"] and "weather service offline" in body["error"]
    _, state = await host.state("Flaky", "t")
    failed = state["conversation_history"][-1]
    assert failed["status"] == "error" and "weather service offline" in failed["error"]
    status, body = await host.run("Flaky", {"message": "hello?", "sessionId": "t"})
    assert (status, body["response"]) == (200, "Still here.")
    assert [m.text for m in fake.requests[-1].messages] == ["hello?"]


async def test_timeout_answers_202_with_a_state_url_then_the_reply_lands(build):
    fake = ScriptedChatClient(steps=[{"text": "slow reply", "delay": 0.5}])
    agent = make_agent(fake)
    app = AgentFunctionApp(agents=[agent], polling=Polling(timeout=0.05))
    host = DurableClientDouble(app)
    status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": "slow"})
    assert status == 202
    assert body["status"] == "accepted"
    assert body["statusUrl"] == "http://localhost/api/agents/WeatherAgent/slow"
    await host.drain()
    _, state = await host.state("WeatherAgent", "slow")
    assert state["last_response"] == "slow reply"
    assert state["conversation_history"][-1]["correlation_id"] == body["correlationId"]


async def test_response_schema_is_requested_and_validated(build):
    schema = {"type": "object", "properties": {"temp": {"type": "number"}}, "required": ["temp"]}
    fake = ScriptedChatClient(steps=[{"text": '{"temp": 21.5}'}, {"text": '{"temp": "warm"}'}])
    _, host = build(make_agent(fake))
    status, body = await host.run(
        "WeatherAgent", {"message": "temp?", "sessionId": "j", "response_schema": schema}
    )
    assert status == 200 and json.loads(body["response"]) == {"temp": 21.5}
    assert fake.requests[0].options.get("response_format") == schema
    status, body = await host.run(
        "WeatherAgent", {"message": "temp?", "sessionId": "j", "response_schema": schema}
    )
    assert status == 500 and "response_schema" in body["error"]


async def test_tool_calls_can_be_disabled_per_request(build):
    fake = ScriptedChatClient(steps=[{"text": "no tools"}])
    _, host = build(make_agent(fake))
    await host.run("WeatherAgent", {"message": "hi", "enable_tool_calls": False})
    assert fake.requests[0].options.get("tool_choice") == "none"


async def test_unknown_session_is_404_json(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[])))
    status, body = await host.state("WeatherAgent", "nobody")
    assert status == 404 and body["status"] == "error" and "nobody" in body["error"]


@pytest.mark.parametrize(
    ("payload", "status", "needle"),
    [
        ("not json", 400, "not valid JSON"),
        (b"\xff\xfe", 400, "UTF-8"),
        ("", 400, "empty"),
        ("[1, 2]", 400, "JSON object"),
        ({}, 400, "'message' is required"),
        ({"message": ""}, 400, "must not be empty"),
        ({"message": "   "}, 400, "must not be empty"),
        ({"message": 42}, 400, "must be a string"),
        ({"message": "hi", "sessionId": "a/b"}, 400, "sessionId"),
        ({"message": "hi", "sessionId": 7}, 400, "sessionId"),
        ({"message": "hi", "sessionId": "x" * 300}, 400, "sessionId"),
        ({"message": "hi", "role": "tool"}, 400, "'role'"),
        ({"message": "hi", "enable_tool_calls": "yes"}, 400, "enable_tool_calls"),
        ({"message": "hi", "response_schema": "object"}, 400, "response_schema"),
        ({"message": "hi", "response_schema": {"type": 12}}, 400, "response_schema"),
        ({"message": "x" * 300_000}, 413, "limit"),
        ({"message": "\U0001f600" * 200_000}, 413, "limit"),
        ({"message": "hi", "thread": "x"}, 400, "unknown field"),
    ],
)
async def test_bad_input_is_a_4xx_json_error_and_never_reaches_the_entity(build, payload, status, needle):
    fake = ScriptedChatClient(steps=[])
    _, host = build(make_agent(fake))
    got, body = await host.run("WeatherAgent", payload)
    assert got == status
    assert body["status"] == "error" and needle in body["error"]
    assert host.states == {} and host.results == [] and fake.requests == []


async def test_unknown_agent_is_404_json_naming_the_known_ones(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[])))
    status, body = await host.run("NoSuchAgent", {"message": "hi"})
    assert status == 404 and "NoSuchAgent" in body["error"] and "WeatherAgent" in body["error"]
    status, body = await host.state("NoSuchAgent", "s")
    assert status == 404


async def test_bad_session_id_in_state_route_is_400(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[])))
    status, body = await host.state("WeatherAgent", "a b")
    assert status == 400 and "session" in body["error"]


async def test_backend_failure_is_503_json(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[])))
    host.fail_with = RuntimeError("The operation failed with an unexpected status code 503")
    status, body = await host.run("WeatherAgent", {"message": "hi"})
    assert status == 503 and "unavailable" in body["error"]
    status, body = await host.state("WeatherAgent", "s")
    assert status == 503


def test_polling_intervals_grow_to_the_cap_from_where_they_start():
    polling = Polling(first_interval=0.004, growth=2.0, max_interval=0.02, due_interval=0.001)
    default = polling.intervals()
    assert [next(default) for _ in range(5)] == [0.004, 0.008, 0.016, 0.02, 0.02]
    due = polling.intervals(polling.due_interval)
    assert [next(due) for _ in range(3)] == [0.001, 0.002, 0.004]
