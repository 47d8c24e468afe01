"""AgentClient / SyncAgentClient request shapes and error handling, over httpx mock transports."""

from __future__ import annotations

import json

import httpx
import pytest

from harness.client import AgentClient, ClientError, SyncAgentClient, check_agent, summarize


def state(n: int) -> dict:
    return {"conversation_history": [{"role": "user", "content": f"m{i}"} for i in range(n)]}


def listing_handler(seen: list[httpx.Request]):
    """Two pages of entities; the second only when the continuation token comes back."""

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        assert request.url.path == "/runtime/webhooks/durabletask/entities/dafx-WeatherAgent"
        assert request.url.params["fetchState"] == "true"
        if request.headers.get("x-ms-continuation-token") == "page2":
            rows = [
                {
                    "entityId": {"name": "dafx-weatheragent", "key": "b"},
                    "lastOperationTime": "2026-01-03T00:00:00Z",
                    "state": json.dumps(state(1)),
                }
            ]
            return httpx.Response(200, json=rows)
        rows = [
            {
                "entityId": {"name": "dafx-weatheragent", "key": "a"},
                "lastOperationTime": "2026-01-01T00:00:00Z",
                "state": state(3),
            },
            {
                "entityId": {"name": "dafx-weatheragent", "key": "c"},
                "lastOperationTime": "2026-01-02T00:00:00Z",
            },
        ]
        return httpx.Response(200, json=rows, headers={"x-ms-continuation-token": "page2"})

    return handler


def test_sessions_follow_continuation_and_sort_newest_first():
    seen: list[httpx.Request] = []
    with SyncAgentClient(
        "http://app", key="k1", transport=httpx.MockTransport(listing_handler(seen))
    ) as client:
        rows = client.sessions("WeatherAgent")
    assert [(r.session_id, r.message_count) for r in rows] == [("b", 1), ("c", 0), ("a", 3)]
    assert rows[2].last_message == "m2"
    assert len(seen) == 2 and all(r.headers["x-functions-key"] == "k1" for r in seen)


async def test_async_client_sessions_and_reset():
    seen: list[httpx.Request] = []
    listing = listing_handler(seen)

    def handler(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            seen.append(request)
            return httpx.Response(202)
        return listing(request)

    async with AgentClient("http://app/", transport=httpx.MockTransport(handler)) as client:
        assert [r.session_id for r in await client.sessions("WeatherAgent")] == ["b", "c", "a"]
        await client.reset("WeatherAgent", "a b")
    assert seen[-1].url.raw_path == b"/runtime/webhooks/durabletask/entities/dafx-WeatherAgent/a%20b?op=reset"
    assert seen[-1].url.params["op"] == "reset"


def test_run_results_and_errors():
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        if body["message"] == "fail":
            return httpx.Response(500, json={"status": "error", "error": "boom", "sessionId": "s"})
        if body["message"] == "bad":
            return httpx.Response(400, json={"status": "error", "error": "message is\nrequired"})
        if body["message"] == "crash":
            return httpx.Response(500, text="<html>Internal Server Error</html>")
        return httpx.Response(200, json={"status": "success", "sessionId": body.get("sessionId")})

    with SyncAgentClient("http://app", transport=httpx.MockTransport(handler)) as client:
        assert client.run("A", "hi", "s1") == {"status": "success", "sessionId": "s1"}
        assert client.run("A", "fail")["error"] == "boom"
        with pytest.raises(ClientError) as exc:
            client.run("A", "bad")
        assert str(exc.value) == "HTTP 400 from POST /api/agents/A/run: message is required"
        assert exc.value.status == 400
        with pytest.raises(ClientError, match=r"^HTTP 500 from POST /api/agents/A/run: <html>"):
            client.run("A", "crash")


def test_state_404_is_none():
    transport = httpx.MockTransport(lambda request: httpx.Response(404, json={"error": "not found"}))
    with SyncAgentClient("http://app", transport=transport) as client:
        assert client.state("A", "s") is None
        assert client.sessions("A") == []


def test_check_agent_and_summaries():
    check_agent("A", ["A", "B"])
    assert check_agent("A", ["A", "B"]) == "A"
    with pytest.raises(ClientError, match="unknown agent 'C'; available agents: A, B"):
        check_agent("C", ["A", "B"])
    assert summarize([{"entityId": {}}, {"nothing": 1}]) == []


def test_check_agent_ignores_case_and_returns_the_apps_spelling():
    assert check_agent("weatheragent", ["MathAgent", "WeatherAgent"]) == "WeatherAgent"
    assert check_agent("MATHAGENT", ["MathAgent", "WeatherAgent"]) == "MathAgent"
    assert check_agent("mathagent", ["mathagent", "MathAgent"]) == "mathagent"  # exact match first
    with pytest.raises(ClientError, match="unknown agent 'weather'"):
        check_agent("weather", ["WeatherAgent"])


@pytest.mark.parametrize("url", ["http://[::1", "http://host:99999999", "http://[zz]:80"])
def test_unparsable_urls_are_client_errors(url):
    with pytest.raises(ClientError, match=r"^invalid URL "):
        SyncAgentClient(url)
    with pytest.raises(ClientError, match=r"^invalid URL "):
        AgentClient(url)


def test_sessions_of_an_agent_without_entities_is_empty():
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(404, json={"error": "no such entity"})

    with SyncAgentClient("http://app", transport=httpx.MockTransport(handler)) as client:
        assert client.sessions("WeatherAgent") == []


def test_entity_name_is_the_librarys():
    from durableagent import entity_name_for
    from harness.client import entity_name

    assert entity_name("WeatherAgent") == entity_name_for("WeatherAgent") == "dafx-WeatherAgent"


def test_summaries_read_the_stored_form_with_folded_history():
    from durableagent import AgentState

    stored = AgentState()
    for turn in range(40):
        stored.add_user_message(f"question {turn}", f"c{turn}")
    stored.add_error("c39", "RuntimeError: down")
    rows = summarize([{"entityId": {"key": "s"}, "state": json.dumps(stored.to_dict())}])
    assert stored.to_dict()["earlier_history"]["count"] > 0  # older entries really are folded
    assert (rows[0].message_count, rows[0].last_message) == (41, "error: RuntimeError: down")
