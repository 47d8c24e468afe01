"""Microsoft agent-framework-azurefunctions' run contract, accepted beside ours (issue 12, part 2)."""

import json

import pytest

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient

from .conftest import DurableClientDouble, make_agent


def _echo_agent(name: str = "WeatherAgent"):
    def echo(request):
        return {"text": f"echo: {request.messages[-1].text}"}

    return make_agent(ScriptedChatClient(rules=[{"when": lambda request: True, "then": echo}]), name)


@pytest.mark.parametrize("field", ["sessionId", "sessionKey", "session_id", "thread_id"])
async def test_session_id_in_any_spelling_in_the_body(build, field):
    _, host = build(_echo_agent())
    status, body = await host.run("WeatherAgent", {"message": "hi", field: "s-body"})
    assert status == 200, body
    assert body["sessionId"] == body["session_id"] == "s-body"
    assert host.signals[-1][1] == "s-body"


@pytest.mark.parametrize("field", ["sessionId", "sessionKey", "session_id", "thread_id"])
async def test_session_id_in_any_spelling_in_the_query_string(build, field):
    _, host = build(_echo_agent())
    await host.run("WeatherAgent", {"message": "one"}, params={field: "s-query"})
    status, body = await host.run("WeatherAgent", {"message": "two", "sessionId": "s-query"})
    assert status == 200 and body["message_count"] == 4


@pytest.mark.parametrize(
    ("payload", "params"),
    [
        ({"message": "hi", "sessionId": "a", "session_id": "b"}, {}),
        ({"message": "hi", "thread_id": "a"}, {"session_id": "b"}),
        ({"message": "hi"}, {"sessionId": "a", "thread_id": "b"}),
    ],
)
async def test_two_different_session_ids_are_400(build, payload, params):
    _, host = build(_echo_agent())
    status, body = await host.run("WeatherAgent", payload, params=params)
    assert status == 400 and "different sessions" in body["error"]
    assert host.signals == []


async def test_the_same_id_in_two_places_is_fine(build):
    _, host = build(_echo_agent())
    status, body = await host.run(
        "WeatherAgent", {"message": "hi", "session_id": "same"}, params={"sessionId": "same"}
    )
    assert status == 200 and body["session_id"] == "same"


async def test_bad_session_id_in_the_query_string_is_400(build):
    _, host = build(_echo_agent())
    status, body = await host.run("WeatherAgent", {"message": "hi"}, params={"session_id": "a/b"})
    assert status == 400 and "sessionId" in body["error"]


async def test_json_replies_carry_both_spellings(build):
    _, host = build(_echo_agent())
    status, body = await host.run("WeatherAgent", {"message": "hi"}, headers={"Idempotency-Key": "k-1"})
    assert status == 200
    assert body["correlationId"] == body["correlation_id"] == "k-1"
    assert body["sessionId"] == body["session_id"]


async def _accepted_at_once(host, **kwargs) -> dict:
    """A request that must be answered 202 without waiting: the route never reads the state."""
    reads = host.reads
    status, body = await host.run("WeatherAgent", kwargs.pop("payload"), **kwargs)
    assert host.reads == reads
    assert status == 202, body
    assert body["status"] == "accepted"
    assert body["sessionId"] == body["session_id"] and body["correlationId"] == body["correlation_id"]
    assert body["statusUrl"] == f"http://localhost/api/agents/WeatherAgent/{body['sessionId']}"
    return body


async def test_wait_for_response_false_answers_202_at_once_and_the_turn_still_runs(build):
    _, host = build(_echo_agent())
    body = await _accepted_at_once(host, payload={"message": "hi", "wait_for_response": False})
    await host.drain()
    status, state = await host.state("WeatherAgent", body["sessionId"])
    assert status == 200 and state["last_response"] == "echo: hi"


async def test_the_header_decides_before_the_query_and_the_body(build):
    _, host = build(_echo_agent())
    await _accepted_at_once(
        host,
        payload={"message": "hi", "wait_for_response": True},
        params={"wait_for_response": "true"},
        headers={"x-ms-wait-for-response": "false"},
    )
    await host.drain()
    status, body = await host.run(
        "WeatherAgent",
        {"message": "hi", "wait_for_response": False},
        params={"wait_for_response": "false"},
        headers={"x-ms-wait-for-response": "true"},
    )
    assert status == 200 and body["response"] == "echo: hi"


async def test_the_query_decides_before_the_body(build):
    _, host = build(_echo_agent())
    status, body = await host.run(
        "WeatherAgent", {"message": "hi", "wait_for_response": False}, params={"wait_for_response": "True"}
    )
    assert status == 200 and body["response"] == "echo: hi"
    await _accepted_at_once(
        host, payload={"message": "hi", "wait_for_response": True}, params={"wait_for_response": "0"}
    )
    await host.drain()


@pytest.mark.parametrize(
    ("payload", "params", "headers", "needle"),
    [
        ({"message": "hi", "wait_for_response": "no"}, {}, {}, "wait_for_response"),
        ({"message": "hi"}, {"wait_for_response": "maybe"}, {}, "wait_for_response"),
        ({"message": "hi"}, {}, {"x-ms-wait-for-response": "later"}, "x-ms-wait-for-response"),
    ],
)
async def test_bad_wait_flags_are_400(build, payload, params, headers, needle):
    _, host = build(_echo_agent())
    status, body = await host.run("WeatherAgent", payload, params=params, headers=headers)
    assert status == 400 and needle in body["error"] and host.signals == []


async def test_text_body_gets_a_text_reply_with_the_session_header(build):
    _, host = build(_echo_agent())
    headers = {"Content-Type": "text/plain; charset=utf-8"}
    status, text = await host.run("WeatherAgent", "  hello there \n", headers=headers)
    assert (status, text) == (200, "echo: hello there")
    session = host.last_response.headers["x-ms-session-id"]
    assert host.last_response.mimetype == "text/plain"
    # The session header names the session that now holds the turn; the query string continues it.
    status, text = await host.run("WeatherAgent", "again", headers=headers, params={"session_id": session})
    assert status == 200 and host.last_response.headers["x-ms-session-id"] == session
    _, state = await host.state("WeatherAgent", session)
    assert [e["content"] for e in state["conversation_history"]] == [
        "hello there",
        "echo: hello there",
        "again",
        "echo: again",
    ]


async def test_text_body_that_accepts_json_gets_json(build):
    _, host = build(_echo_agent())
    headers = {"Content-Type": "text/plain", "Accept": "application/json"}
    status, body = await host.run("WeatherAgent", "hi", headers=headers)
    assert status == 200 and body["response"] == "echo: hi" and body["session_id"]
    assert "x-ms-session-id" not in host.last_response.headers


async def test_json_body_never_gets_a_text_reply(build):
    _, host = build(_echo_agent())
    status, body = await host.run("WeatherAgent", {"message": "hi"}, headers={"Accept": "text/plain"})
    assert status == 200 and body["response"] == "echo: hi"


async def test_text_body_errors_stay_json(build):
    _, host = build(_echo_agent())
    status, body = await host.run("WeatherAgent", "   ", headers={"Content-Type": "text/plain"})
    assert status == 400 and "must not be empty" in body["error"]
    # A JSON-looking text body is the message itself, not parsed.
    status, text = await host.run("WeatherAgent", '{"message": "x"}', headers={"Content-Type": "text/plain"})
    assert (status, text) == (200, 'echo: {"message": "x"}')


async def test_response_format_is_a_json_schema_like_response_schema(build):
    fake = ScriptedChatClient(steps=[{"text": '{"city": "Paris"}'}])
    _, host = build(make_agent(fake))
    schema = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
    status, body = await host.run("WeatherAgent", {"message": "where?", "response_format": schema})
    assert status == 200 and json.loads(body["response"]) == {"city": "Paris"}
    assert host.signals[-1][3]["response_schema"] == schema


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"message": "hi", "response_format": "json"}, "response_format"),
        ({"message": "hi", "response_format": {"type": 3}}, "response_format"),
        ({"message": "hi", "response_format": {"type": "object"}, "response_schema": {}}, "differ"),
        ({"message": "hi", "session": "x"}, "unknown field"),
        ({"message": "hi", "correlation_id": "x"}, "unknown field"),
    ],
)
async def test_bad_peer_fields_and_unknown_fields_stay_errors(build, payload, needle):
    _, host = build(_echo_agent())
    status, body = await host.run("WeatherAgent", payload)
    assert status == 400 and needle in body["error"] and host.signals == []


async def test_idempotency_key_still_deduplicates_with_peer_spellings(build):
    fake = ScriptedChatClient(steps=[{"text": "only once"}])
    _, host = build(make_agent(fake))
    first = await host.run(
        "WeatherAgent", {"message": "hi", "session_id": "idem"}, headers={"Idempotency-Key": "k"}
    )
    again = await host.run(
        "WeatherAgent", {"message": "hi"}, headers={"Idempotency-Key": "k"}, params={"thread_id": "idem"}
    )
    assert first == again and first[1]["response"] == "only once"
    assert len(fake.requests) == 1


async def test_entity_answers_microsofts_run_operation(build):
    _, host = build(_echo_agent())
    output = host.run_batch(
        "dafx-WeatherAgent",
        "peer",
        [
            (
                "run",
                {
                    "message": "hi",
                    "correlation_id": "c-peer",
                    "role": "user",
                    "request_response_format": "text",
                    "response_format": None,
                    "enable_tool_calls": True,
                    "wait_for_response": True,
                    "created_at": "2026-12-01T00:00:00Z",
                    "orchestration_id": None,
                },
            )
        ],
    )
    result = json.loads(output["results"][0]["result"])
    assert result["status"] == "success" and result["response"] == "echo: hi"
    assert result["correlation_id"] == "c-peer"
    status, state = await host.state("WeatherAgent", "peer")
    assert status == 200 and state["message_count"] == 2


async def test_entity_run_refuses_options_it_would_ignore(build):
    _, host = build(_echo_agent())
    output = host.run_batch("dafx-WeatherAgent", "peer", [("run", {"message": "hi", "options": {"x": 1}})])
    result = json.loads(output["results"][0]["result"])
    assert result["status"] == "error" and "options" in result["error"]
    assert host.states == {}


async def test_agent_without_http_endpoint_has_no_routes_but_runs_in_its_entity():
    app = AgentFunctionApp(agents=[_echo_agent()])
    app.add_agent(_echo_agent("Hidden"), enable_http_endpoint=False)
    host = DurableClientDouble(app)
    status, body = await host.run("Hidden", {"message": "hi"})
    assert status == 404 and "Hidden" in body["error"] and "WeatherAgent" in body["error"]
    status, _ = await host.state("hidden", "s")
    assert status == 404
    output = host.run_batch("dafx-Hidden", "s", [("run_agent", {"message": "hi"})])
    assert json.loads(output["results"][0]["result"])["response"] == "echo: hi"


async def test_app_wide_default_for_http_endpoints():
    app = AgentFunctionApp(agents=[_echo_agent()], enable_http_endpoints=False)
    app.add_agent(_echo_agent("Public"), enable_http_endpoint=True)
    host = DurableClientDouble(app)
    assert (await host.run("WeatherAgent", {"message": "hi"}))[0] == 404
    assert (await host.run("Public", {"message": "hi"}))[0] == 200
