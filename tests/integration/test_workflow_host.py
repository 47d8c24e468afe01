"""Hosted workflows under failure: an executor that raises, a host SIGKILLed mid-superstep, a
person who never answers, the live event stream, and a hand-written orchestrator reaching a
workflow's agent (tests/integration/workflow_app)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from .test_sample_workflows import finished, started, wait_status

pytestmark = pytest.mark.integration
APP = Path(__file__).resolve().parent / "workflow_app"


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return APP


def parse_events(body: str) -> list[tuple[int, str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((int(fields["id"]), fields["event"], json.loads(fields["data"])))
    return events


def test_an_executor_that_raises_fails_the_instance_naming_it(host_client):
    done = finished(host_client, started(host_client, "boom", "hello"))
    assert done["runtimeStatus"] == "Failed", done
    assert "explode" in done["error"] and "kaboom on HELLO" in done["error"]
    assert done["output"] is None
    assert done["customStatus"]["executors"]["explode"] == "failed"


def test_the_event_stream_tells_the_whole_run_and_resumes(host_client):
    body = started(host_client, "boom", "again")
    finished(host_client, body)
    url = body["statusQueryGetUri"]
    response = host_client.get(url, headers={"Accept": "text/event-stream"})
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
    events = parse_events(response.text)
    kinds = [kind for _, kind, _ in events]
    assert kinds == [
        "started",
        "superstep_started",
        "executor_invoked",
        "executor_completed",
        "superstep_completed",
        "superstep_started",
        "executor_invoked",
        "executor_failed",
        "status",
    ]
    assert [number for number, _, _ in events] == list(range(len(events)))
    assert events[0][2]["input"] == "again"
    assert events[3][2]["sent"] == ["AGAIN"] and events[3][2]["state"] == ["checked"]
    assert events[6][2] == {"superstep": 2, "executor": "explode", "input": "AGAIN"}
    assert "kaboom" in json.dumps(events[7][2]) and events[-1][2]["runtimeStatus"] == "Failed"
    resumed = host_client.get(url, headers={"Accept": "text/event-stream", "Last-Event-ID": "5"})
    assert parse_events(resumed.text) == events[6:]
    bad = host_client.get(url, headers={"Accept": "text/event-stream", "Last-Event-ID": "x"})
    assert bad.status_code == 400 and "Last-Event-ID" in bad.json()["error"]


def test_a_host_killed_mid_superstep_finishes_the_workflow_with_one_agent_turn(function_host, host_client):
    body = started(host_client, "slow", "ping")
    # the agent has answered and the pause executor is running
    wait_status(
        host_client,
        body["statusQueryGetUri"],
        lambda s: (s.get("customStatus") or {}).get("executors", {}).get("pause") == "running",
    )
    function_host.restart(kill=True)
    done = finished(host_client, body)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"].startswith("after pause:") and "ping" in done["output"]
    session = host_client.get(f"/api/agents/slow-Echo/{body['instanceId']}").json()
    assert session["message_count"] == 2, session  # one turn, applied once


def test_an_unanswered_request_times_out_when_the_app_says_so(host_client):
    body = started(host_client, "ask", "proceed?")
    started_at = time.monotonic()
    done = finished(host_client, body)
    assert done["runtimeStatus"] == "Failed" and "no response" in done["error"], done
    assert time.monotonic() - started_at < 30


def test_a_hand_written_orchestrator_reaches_a_workflow_agent(host_client):
    urls = host_client.post("/api/start/ask_echo", content="marco").json()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        status = host_client.get(urls["statusQueryGetUri"]).json()
        if status["runtimeStatus"] in ("Completed", "Failed"):
            break
        time.sleep(0.1)
    assert status["runtimeStatus"] == "Completed", status
    assert "marco" in status["output"]
    session = host_client.get(f"/api/agents/slow-Echo/{urls['id']}").json()
    assert session["message_count"] == 2


def test_agent_text_streams_into_the_events_while_its_turn_runs(host_client, chat_script):
    chat_script.set({"default": {"chunks": ["first ", "second ", "third"], "chunk_delay": 0.2}})
    body = started(host_client, "slow", "stream me")
    response = host_client.get(body["statusQueryGetUri"], headers={"Accept": "text/event-stream"})
    events = parse_events_with_chunks(response.text)
    kinds = [kind for _, kind, _ in events]
    invoked = kinds.index("executor_invoked")
    completed = kinds.index("executor_completed")
    updates = [(event_id, data) for event_id, kind, data in events if kind == "agent_update"]
    assert updates and all(invoked < kinds.index("agent_update") < completed for _ in updates)
    assert "".join(d.get("text", "") for _, d in updates) == "first second third"
    assert all(d["executor"] == "Echo" for _, d in updates)
    assert events[completed][2]["text"] == "first second third" and kinds[-1] == "status"
    # resuming after a chunk: the rest of the run, no event twice
    first_chunk = updates[0][0]
    resumed = parse_events_with_chunks(
        host_client.get(
            body["statusQueryGetUri"], headers={"Accept": "text/event-stream", "Last-Event-ID": first_chunk}
        ).text
    )
    assert [kind for _, kind, _ in resumed] == kinds[int(first_chunk.split(":")[0]) + 1 :][-len(resumed) :]
    assert "agent_update" not in [kind for _, kind, _ in resumed]


def parse_events_with_chunks(body: str) -> list[tuple[str, str, dict]]:
    events = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        events.append((fields["id"], fields["event"], json.loads(fields["data"])))
    return events
