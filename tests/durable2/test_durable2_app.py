"""The Durable Functions 2.x sample (`samples/durable2`) on the local host, in its own Python 3.13.

Everything goes through what a user has: the app's own HTTP starters (whose 2.x durable client talks
gRPC to the host), and the Durable HTTP API under /runtime/webhooks/durabletask that the check-status
response points at. The orchestrators, activities and entity run in the app's interpreter through the
2.x SDK's own handlers (base64 protobuf in, base64 protobuf out).
"""

from __future__ import annotations

from typing import Any

import httpx

from harness.client import SyncAgentClient
from harness.stack import FunctionHost
from harness.testing.orchestrations import OrchestrationRun


def start(http: httpx.Client, host: FunctionHost, name: str, body: Any = None) -> OrchestrationRun:
    """Start `name` through the app's own starter; the run, read through the Durable HTTP API."""
    answer = http.post(f"/api/orchestrators/{name}", json=body)
    assert answer.status_code == 202, answer.text
    links = answer.json()
    assert links["statusQueryGetUri"].startswith(f"{host.url}/runtime/webhooks/durabletask/instances/")
    assert answer.headers["Location"] == links["statusQueryGetUri"]
    return OrchestrationRun(SyncAgentClient(host.url), links["id"], timeout=60, interval=0.1)


def test_chaining_runs_each_activity_in_order(http: httpx.Client, durable2_host: FunctionHost) -> None:
    run = start(http, durable2_host, "chain")
    status = run.wait()
    assert status["runtimeStatus"] == "Completed", status
    assert status["output"] == ["Hello Tokyo", "Hello Hello Tokyo", "Hello Hello Hello Tokyo"]
    completed = [e for e in run.history if e["EventType"] == "TaskCompleted"]
    assert [e["FunctionName"] for e in completed] == ["greet"] * 3
    assert run.history_types()[0] == "ExecutionStarted"
    assert run.history_types()[-1] == "ExecutionCompleted"


def test_fan_out_sums_every_activity(http: httpx.Client, durable2_host: FunctionHost) -> None:
    run = start(http, durable2_host, "fan_out", 30)
    status = run.wait()
    assert status["output"] == sum(n * n for n in range(30)), status
    assert run.history_types().count("TaskCompleted") == 30


def test_approval_answered_over_the_apps_route(http: httpx.Client, durable2_host: FunctionHost) -> None:
    run = start(http, durable2_host, "approval", 72)
    run.wait_for(event="TimerCreated")
    answer = http.post(f"/api/approvals/{run.id}", json={"approved": False})
    assert answer.status_code == 202
    assert run.wait()["output"] == "rejected"


def test_approval_times_out_on_its_durable_timer(http: httpx.Client, durable2_host: FunctionHost) -> None:
    run = start(http, durable2_host, "approval", 0.0003)  # about one second
    status = run.wait()
    assert status["output"] == "timed out", status
    assert "TimerFired" in run.history_types()


def test_durable_http_api_raises_events_and_terminates(
    http: httpx.Client, durable2_host: FunctionHost
) -> None:
    approved = start(http, durable2_host, "approval", 72)
    approved.wait_for(event="TimerCreated")
    approved.client.raise_event(approved.id, "Approval", True)
    assert approved.wait()["output"] == "approved"

    stopped = start(http, durable2_host, "approval", 72)
    stopped.wait_for(event="TimerCreated")
    stopped.client.terminate(stopped.id, "not needed")
    status = stopped.wait()
    assert status["runtimeStatus"] == "Terminated", status


def test_entity_signalled_read_and_called_from_an_orchestration(
    http: httpx.Client, durable2_host: FunctionHost
) -> None:
    assert http.post("/api/counters/apples", json={"amount": 5}).status_code == 202
    assert http.post("/api/counters/apples", json={"amount": 7}).status_code == 202
    assert _eventually(lambda: http.get("/api/counters/apples").text == "12")
    run = start(http, durable2_host, "count_up", "apples")
    assert run.wait()["output"] == 22
    entity = http.get("/runtime/webhooks/durabletask/entities/Counter/apples")
    assert entity.status_code == 200 and entity.json() == 22, entity.text


def test_an_unknown_orchestrator_is_refused_at_start(http: httpx.Client) -> None:
    """The engine knows a 2.x app's orchestrators, so the client's start is refused (NOT_FOUND) and the
    app's starter, which does not catch it, fails with the name in its error."""
    answer = http.post("/api/orchestrators/no_such_orchestrator")
    assert answer.status_code == 500
    assert "orchestrator function 'no_such_orchestrator' is not defined by this app" in answer.text


def _eventually(check: Any, attempts: int = 100) -> bool:
    import time

    for _ in range(attempts):
        if check():
            return True
        time.sleep(0.1)
    return False
