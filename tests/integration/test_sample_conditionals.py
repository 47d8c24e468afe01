"""samples/conditionals in the session's Functions host: a structured spam verdict picks the branch."""

from __future__ import annotations

from pathlib import Path

import pytest

from .orchestrations import SAMPLES, sample_script, session_history, start, status, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return SAMPLES / "conditionals"


@pytest.fixture(autouse=True)
def _script(chat_script):
    chat_script.set(sample_script("conditionals"))


def activities(host_client, urls) -> list[str]:
    events = status(host_client, urls, history=True).get("historyEvents") or []
    return [e["FunctionName"] for e in events if e.get("EventType") == "TaskCompleted"]


def test_spam_is_handled_by_the_spam_activity(host_client):
    email = {"email_id": "e1", "email_content": "You are a winner! Click here to claim your prize."}
    urls = start(host_client, "/api/conditionals/start", email)
    done = wait_for(host_client, urls)
    assert done["runtimeStatus"] == "Completed", done
    output = done["output"]
    assert output["is_spam"] is True and "winner" in output["reason"]
    assert output["outcome"].startswith("Email e1 marked as spam")
    assert activities(host_client, urls) == ["handle_spam_email"]


def test_legitimate_mail_gets_a_drafted_reply_sent(host_client):
    email = {"email_id": "e2", "email_content": "Hi, are we still on for lunch tomorrow?"}
    urls = start(host_client, "/api/conditionals/start", email)
    done = wait_for(host_client, urls)
    assert done["runtimeStatus"] == "Completed", done
    output = done["output"]
    assert output["is_spam"] is False and output["outcome"] == "Reply to e2 sent"
    assert output["reply"].startswith("Thank you for your e-mail")
    assert activities(host_client, urls) == ["send_email"]
    history = session_history(host_client, "EmailAssistantAgent", output["sessionId"])
    assert history[0]["content"].endswith(email["email_content"])
    assert history[1]["content"] == output["reply"]


def test_start_route_rejects_a_missing_email(host_client):
    response = host_client.post("/api/conditionals/start", json={"email_id": "x"})
    assert response.status_code == 400 and "email_content" in response.json()["error"]
