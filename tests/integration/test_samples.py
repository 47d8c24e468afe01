"""The seed flows over real HTTP: app routes, the Durable HTTP API, Azurite-backed entities."""

from __future__ import annotations

import concurrent.futures

import pytest

from .conftest import run, wait_for_state

pytestmark = pytest.mark.integration


def test_health_lists_both_agents(host_client):
    response = host_client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "healthy" and body["agent_count"] == 2
    assert {a["name"] for a in body["agents"]} == {"WeatherAgent", "MathAgent"}


def test_seed_flow_run_then_state_with_tool_call_and_usage(host_client, unique_session, chat_script):
    response = run(
        host_client, "WeatherAgent", {"message": "What's the weather in Paris?", "sessionId": unique_session}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "success" and body["sessionId"] == unique_session
    assert "Paris" in body["response"] and body["message_count"] == 2

    state = host_client.get(f"/api/agents/WeatherAgent/{unique_session}").json()
    assert state["message_count"] == 2 and state["last_response"] == body["response"]
    user, reply = state["conversation_history"]
    assert user["content"] == "What's the weather in Paris?" and user["role"] == "user"
    assert reply["correlation_id"] == user["correlation_id"] == body["correlationId"]
    (call,) = reply["agent_response"]["tool_calls"]
    assert call["name"] == "get_weather" and call["arguments"] == {"location": "Paris"}
    assert "Paris" in call["result"]  # produced by the sample's real get_weather tool
    assert reply["agent_response"]["usage"]["total_tokens"] > 0
    # The fake saw the tool's result in its second request of the turn.
    requests = chat_script.requests()
    assert any(call["result"] in str(r["messages"]) for r in requests)


def test_multi_agent_routes_reach_their_own_agent(host_client, unique_session):
    math = run(host_client, "MathAgent", {"message": "what is 7 times 6", "sessionId": unique_session})
    assert math.status_code == 200, math.text
    assert "42" in math.json()["response"]
    # Same key, other agent: a separate session.
    assert host_client.get(f"/api/agents/WeatherAgent/{unique_session}").status_code == 404
    tool = host_client.get(f"/api/agents/MathAgent/{unique_session}").json()["conversation_history"][1]
    assert tool["agent_response"]["tool_calls"][0]["name"] == "calculate"


def test_history_grows_across_turns_and_reaches_the_model(host_client, unique_session, chat_script):
    for message in ("hello", "What's the weather in Oslo?", "thanks"):
        assert (
            run(host_client, "WeatherAgent", {"message": message, "sessionId": unique_session}).status_code
            == 200
        )
    state = host_client.get(f"/api/agents/WeatherAgent/{unique_session}").json()
    assert [e["content"] for e in state["conversation_history"] if e["role"] == "user"] == [
        "hello",
        "What's the weather in Oslo?",
        "thanks",
    ]
    last = chat_script.requests()[-1]
    texts = [m["text"] for m in last["messages"]]
    assert "hello" in texts and "What's the weather in Oslo?" in texts and texts[-1] == "thanks"


def test_scripted_steps_and_a_model_error(host_client, unique_session, chat_script):
    chat_script.set({"steps": [{"error": "model overloaded"}, {"text": "recovered"}]})
    failed = run(host_client, "WeatherAgent", {"message": "first", "sessionId": unique_session})
    assert failed.status_code == 500
    assert failed.json()["status"] == "error" and "model overloaded" in failed.json()["error"]
    ok = run(host_client, "WeatherAgent", {"message": "second", "sessionId": unique_session})
    assert ok.status_code == 200 and ok.json()["response"] == "recovered"
    history = host_client.get(f"/api/agents/WeatherAgent/{unique_session}").json()["conversation_history"]
    assert [e.get("status") for e in history] == [None, "error", None, "success"]


def test_reset_through_the_durable_http_api(host_client, unique_session):
    run(host_client, "WeatherAgent", {"message": "hello", "sessionId": unique_session})
    signal = host_client.post(
        f"/runtime/webhooks/durabletask/entities/dafx-WeatherAgent/{unique_session}?op=reset"
    )
    assert signal.status_code == 202
    state = wait_for_state(host_client, "WeatherAgent", unique_session, lambda s: s["message_count"] == 0)
    assert state["conversation_history"] == []


def test_sessions_are_listed_by_the_durable_http_api(host_client, unique_session):
    run(host_client, "WeatherAgent", {"message": "hello", "sessionId": unique_session})
    listing = host_client.get(
        "/runtime/webhooks/durabletask/entities/dafx-WeatherAgent", params={"fetchState": "true"}
    )
    assert listing.status_code == 200
    found = [e for e in listing.json() if e["entityId"]["key"] == unique_session]
    assert len(found) == 1 and found[0]["state"]["message_count"] == 2


def test_concurrent_posts_to_one_session_are_serialized(host_client, unique_session):
    messages = [f"echo number {i}" for i in range(6)]
    with concurrent.futures.ThreadPoolExecutor(len(messages)) as pool:
        replies = list(
            pool.map(
                lambda m: run(host_client, "WeatherAgent", {"message": m, "sessionId": unique_session}),
                messages,
            )
        )
    for message, reply in zip(messages, replies, strict=True):
        assert reply.status_code == 200, reply.text
        assert message in reply.json()["response"]  # the default rule echoes the user's text
    history = host_client.get(f"/api/agents/WeatherAgent/{unique_session}").json()["conversation_history"]
    assert len(history) == 12
    for user, answer in zip(history[::2], history[1::2], strict=True):
        assert user["role"] == "user" and answer["role"] == "assistant"
        assert user["correlation_id"] == answer["correlation_id"] and user["content"] in answer["content"]
    assert sorted(e["content"] for e in history[::2]) == sorted(messages)


def test_state_survives_a_host_restart(function_host, host_client, unique_session):
    run(host_client, "WeatherAgent", {"message": "What's the weather in Rome?", "sessionId": unique_session})
    before = host_client.get(f"/api/agents/WeatherAgent/{unique_session}").json()
    function_host.restart(kill=True)
    after = host_client.get(f"/api/agents/WeatherAgent/{unique_session}").json()
    assert after["conversation_history"] == before["conversation_history"]
    again = run(host_client, "WeatherAgent", {"message": "and tomorrow?", "sessionId": unique_session})
    assert again.status_code == 200 and again.json()["message_count"] == 4


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/api/agents/WeatherAgent/run", b"{not json", 400),
        ("/api/agents/WeatherAgent/run", b'{"message": ""}', 400),
        ("/api/agents/WeatherAgent/run", b'{"message": "hi", "sessionId": "a b"}', 400),
        ("/api/agents/WeatherAgent/run", b"\xff\xfe\xfd", 400),
        ("/api/agents/NoSuchAgent/run", b'{"message": "hi"}', 404),
    ],
)
def test_bad_input_over_http_is_a_json_4xx(host_client, path, body, status):
    response = host_client.post(path, content=body, headers={"content-type": "application/json"})
    assert response.status_code == status
    assert response.json()["status"] == "error" and response.json()["error"]


def test_unknown_session_is_404_json(host_client, unique_session):
    response = host_client.get(f"/api/agents/WeatherAgent/{unique_session}")
    assert response.status_code == 404 and unique_session in response.json()["error"]


def _all_sessions(client, agent: str, top: int = 3) -> list[dict]:
    """Every page of the session list route, following its continuation tokens."""
    sessions: list[dict] = []
    token = None
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        response = client.get(f"/api/agents/{agent}", params={"top": top}, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        sessions += body["sessions"]
        token = body["continuationToken"]
        if token is None:
            return sessions


def test_sessions_route_lists_through_the_durable_api_and_delete_removes(host_client, unique_session):
    keys = [f"{unique_session}-{i}" for i in range(3)]
    for key in keys:
        assert run(host_client, "WeatherAgent", {"message": "hello", "sessionId": key}).status_code == 200
    assert run(host_client, "WeatherAgent", {"message": "again", "sessionId": keys[0]}).status_code == 200
    listed = [s for s in _all_sessions(host_client, "WeatherAgent") if s["sessionId"] in keys]
    assert [s["sessionId"] for s in listed] == [keys[0], keys[2], keys[1]]
    assert [s["message_count"] for s in listed] == [4, 2, 2]
    assert all(s["last_activity"] for s in listed)

    response = host_client.delete(f"/api/agents/WeatherAgent/{keys[1]}")
    assert response.status_code == 204, response.text
    assert host_client.get(f"/api/agents/WeatherAgent/{keys[1]}").status_code == 404
    assert host_client.delete(f"/api/agents/WeatherAgent/{keys[1]}").status_code == 404
    remaining = {s["sessionId"] for s in _all_sessions(host_client, "WeatherAgent", top=100)}
    assert keys[1] not in remaining and {keys[0], keys[2]} <= remaining


def test_microsoft_client_contract_over_http(host_client, unique_session):
    # A text body with the session in the query string: a plain-text reply naming the session.
    response = host_client.post(
        "/api/agents/WeatherAgent/run",
        params={"session_id": unique_session},
        content="What's the weather in Paris?",
        headers={"Content-Type": "text/plain"},
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["x-ms-session-id"] == unique_session and "Paris" in response.text
    # Not waiting: 202 at once, both spellings; the turn lands in the same session.
    response = host_client.post(
        "/api/agents/WeatherAgent/run",
        json={"message": "and in Rome?", "thread_id": unique_session},
        headers={"x-ms-wait-for-response": "false"},
    )
    assert response.status_code == 202, response.text
    body = response.json()
    assert body["session_id"] == body["sessionId"] == unique_session and body["correlation_id"]
    state = wait_for_state(host_client, "WeatherAgent", unique_session, lambda s: s["message_count"] == 4)
    assert state["conversation_history"][-2]["content"] == "and in Rome?"
