"""samples/workflows in the session's Functions host: agent-framework Workflows as durable
orchestrations, driven through Microsoft's three routes as a client of its package would."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from .orchestrations import SAMPLES, sample_script

pytestmark = pytest.mark.integration
FINISHED = ("Completed", "Failed", "Terminated")


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return SAMPLES / "workflows"


@pytest.fixture(autouse=True)
def _script(chat_script):
    chat_script.set(sample_script("workflows"))


def run(client: httpx.Client, name: str, body: Any, **params: Any) -> httpx.Response:
    kwargs: dict[str, Any] = {"json": body} if not isinstance(body, str) else {"content": body}
    return client.post(f"/api/workflow/{name}/run", params=params, **kwargs)


def started(client: httpx.Client, name: str, body: Any, **params: Any) -> dict[str, Any]:
    response = run(client, name, body, **params)
    assert response.status_code == 202, response.text
    return response.json()


def wait_status(client: httpx.Client, url: str, predicate: Any, timeout: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    last: dict[str, Any] = {}
    while time.monotonic() < deadline:
        response = client.get(url)
        assert response.status_code == 200, response.text
        last = response.json()
        if predicate(last):
            return last
        time.sleep(0.1)
    raise AssertionError(f"condition never met; last status: {last}")


def finished(client: httpx.Client, started_body: dict[str, Any]) -> dict[str, Any]:
    return wait_status(client, started_body["statusQueryGetUri"], lambda s: s["runtimeStatus"] in FINISHED)


def test_shared_state_carries_the_document_between_executors(host_client):
    body = started(host_client, "shared_state", {"doc_id": "d1", "text": "one two three four"})
    assert body["message"] == "Workflow started" and body["respondUri"].endswith("/{requestId}")
    done = finished(host_client, body)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == {"doc_id": "d1", "words": 4, "text": "one two three four"}
    assert done["pendingHumanInputRequests"] == []


def test_wait_for_response_answers_with_the_output(host_client):
    response = run(host_client, "shared_state", {"doc_id": "d2", "text": "a b"}, waitForResponse="true")
    assert response.status_code == 200, response.text
    assert response.json()["runtimeStatus"] == "Completed" and response.json()["output"]["words"] == 2


@pytest.mark.parametrize(
    ("email", "expected"),
    [
        ("You are a winner! Click here for your prize.", "quarantined: SPAM: it promises a prize."),
        ("Are we still on for lunch?", "sent: Thank you for your message; I will get back to you shortly."),
    ],
)
def test_spam_triage_routes_by_the_agents_verdict(host_client, email, expected):
    done = finished(host_client, started(host_client, "spam_triage", email))
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == expected
    # the agent's turn lives in a workflow-scoped session, listed like any agent's
    sessions = host_client.get("/api/agents/spam_triage-SpamDetector").json()
    assert sessions["sessions"], sessions


def test_expert_review_fans_out_to_agents_and_in_to_one_executor(host_client):
    done = finished(host_client, started(host_client, "expert_review", "why does ice melt"))
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == {
        "Physicist": "Physically, it is about energy and motion.",
        "Chemist": "Chemically, it is about bonds breaking and forming.",
    }


def test_content_approval_waits_for_a_person_then_publishes(host_client):
    body = started(host_client, "content_approval", "Announce Nimbus")
    waiting = wait_status(host_client, body["statusQueryGetUri"], lambda s: s["pendingHumanInputRequests"])
    assert waiting["runtimeStatus"] == "Running"
    (request,) = waiting["pendingHumanInputRequests"]
    assert request["sourceExecutor"] == "request_approval"
    assert request["requestData"]["draft"].startswith("Meet Nimbus")
    assert request["responseType"].endswith("ApprovalResponse")
    assert request["responseSchema"]["properties"]["approved"]["type"] == "boolean"
    respond = request["respondUrl"]
    assert respond == body["respondUri"].replace("{requestId}", request["requestId"])
    # the notifier was told the same place to answer (WorkflowHitlContext, from the host's WEBSITE_HOSTNAME)
    stream = host_client.get(
        body["statusQueryGetUri"], headers={"Accept": "text/event-stream"}, params={"timeoutSeconds": "1"}
    ).text
    told = next(line for line in stream.splitlines() if "Please review the draft" in line)
    host_and_port, path = respond.split("//", 1)[1].split("/", 1)
    assert path in told and f":{host_and_port.rsplit(':', 1)[1]}/" in told

    bad = host_client.post(respond, json={"approved": "maybe"})
    assert bad.status_code == 400 and "ApprovalResponse" in bad.json()["error"]
    unknown = host_client.post(respond.rsplit("/", 1)[0] + "/nope", json={"approved": True})
    assert unknown.status_code == 404 and request["requestId"] in unknown.json()["error"]

    ok = host_client.post(respond, json={"approved": True})
    assert ok.status_code == 200, ok.text
    assert ok.json() == {
        "message": "Response delivered successfully",
        "instanceId": body["instanceId"],
        "requestId": request["requestId"],
    }
    done = finished(host_client, body)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == "published: Meet Nimbus, our new cloud notebook. It syncs everywhere."
    late = host_client.post(respond, json={"approved": True})
    assert late.status_code == 409 and "Completed" in late.json()["error"]


def test_refund_order_asks_inside_its_sub_workflow(host_client):
    body = started(host_client, "refund_order", {"order_id": "o-7", "amount": 12.5}, runId="refund-o-7")
    assert body["instanceId"] == "refund-o-7"
    waiting = wait_status(host_client, body["statusQueryGetUri"], lambda s: s["pendingHumanInputRequests"])
    (request,) = waiting["pendingHumanInputRequests"]
    assert request["requestId"].startswith("approval~0~"), request
    assert request["requestData"] == {"order_id": "o-7", "amount": 12.5}
    ok = host_client.post(request["respondUrl"], json={"approved": False})
    assert ok.status_code == 200, ok.text
    done = finished(host_client, body)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == "order closed: refund of 12.50 for o-7 denied"


def test_bad_input_is_refused_with_the_reason(host_client):
    not_a_document = run(host_client, "shared_state", {"doc_id": "x"})
    assert not_a_document.status_code == 400 and "text" in not_a_document.json()["error"]
    bad_id = run(host_client, "shared_state", {"doc_id": "x", "text": "y"}, runId="a/b")
    assert bad_id.status_code == 400 and "runId" in bad_id.json()["error"]
    bad_timeout = run(host_client, "shared_state", {"doc_id": "x", "text": "y"}, timeoutSeconds="500")
    assert bad_timeout.status_code == 400 and "timeoutSeconds" in bad_timeout.json()["error"]
    missing = host_client.get("/api/workflow/shared_state/status/no-such-instance")
    assert missing.status_code == 404 and "no-such-instance" in missing.json()["error"]
    other = started(host_client, "expert_review", "what is heat")
    elsewhere = host_client.get(f"/api/workflow/shared_state/status/{other['instanceId']}")
    assert elsewhere.status_code == 404
