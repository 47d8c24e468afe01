"""An app without the HTTP streams extension (the multi-agent sample) answers an SSE request with
the whole event stream in one body once the turn ended: the same events, the same final reply."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.integration


def test_sse_without_http_streams_arrives_whole_with_chunks_and_final(
    host_client, chat_script, unique_session
):
    chat_script.set({"steps": [{"chunks": ["one ", "two"]}]})
    response = host_client.post(
        "/api/agents/WeatherAgent/run",
        json={"message": "count", "sessionId": unique_session},
        headers={"Accept": "text/event-stream"},
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    events = [b for b in response.text.split("\n\n") if b.strip()]
    kinds = [next(line[7:] for line in b.splitlines() if line.startswith("event: ")) for b in events]
    assert kinds == ["accepted", "text", "text", "final"]
    assert '"response": "one two"' in events[-1] and '"status": "success"' in events[-1]
    state = host_client.get(f"/api/agents/WeatherAgent/{unique_session}").json()
    assert state["conversation_history"][-1]["content"] == "one two"
