"""samples/human_in_the_loop in the session's Functions host: draft, review by event, revise, publish."""

from __future__ import annotations

from pathlib import Path

import pytest

from .orchestrations import SAMPLES, raise_event, sample_script, session_history, start, status, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return SAMPLES / "human_in_the_loop"


@pytest.fixture(autouse=True)
def _script(chat_script):
    chat_script.set(sample_script("human_in_the_loop"))


def awaiting(attempt: int):
    def check(state: dict) -> bool:
        custom = state.get("customStatus") or {}
        return custom.get("step") == "awaiting_approval" and custom.get("attempt") == attempt

    return check


def test_feedback_revises_then_approval_publishes(host_client):
    urls = start(host_client, "/api/hitl/start", {"topic": "durable agents"})
    first = wait_for(host_client, urls, awaiting(1))
    assert first["runtimeStatus"] == "Running"
    assert first["customStatus"]["content"].startswith("On durable agents")

    raise_event(host_client, urls, "ApprovalResponse", {"approved": False, "feedback": "make it shorter"})
    second = wait_for(host_client, urls, awaiting(2))
    assert "make it shorter" in second["customStatus"]["content"]

    raise_event(host_client, urls, "ApprovalResponse", {"approved": True})
    done = wait_for(host_client, urls)
    assert done["runtimeStatus"] == "Completed", done
    output = done["output"]
    assert output["status"] == "published" and output["attempts"] == 2
    assert output["published"] == "Published the article about durable agents"
    history = session_history(host_client, "WriterAgent", output["sessionId"])
    assert len(history) == 4 and history[3]["content"] == output["content"]
    events = status(host_client, urls, history=True).get("historyEvents") or []
    done_activities = [e["FunctionName"] for e in events if e.get("EventType") == "TaskCompleted"]
    assert done_activities == ["notify_for_approval", "notify_for_approval", "publish_content"]


def test_no_answer_before_the_timeout_ends_the_review(host_client):
    urls = start(
        host_client, "/api/hitl/start", {"topic": "timers", "approval_timeout_hours": 0.0005}
    )  # ~2 s
    done = wait_for(host_client, urls, timeout=60)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"]["status"] == "timed_out" and done["output"]["attempts"] == 1


def test_start_route_rejects_a_missing_topic(host_client):
    response = host_client.post("/api/hitl/start", json={})
    assert response.status_code == 400 and "topic" in response.json()["error"]
