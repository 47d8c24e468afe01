"""The `workflow_runner` fixture (engine: harness/testing/workflows.py) on samples/workflows in the
session's real host: a run's output and events, approvals answered, and a timeout that says what
the instance waits for."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from harness.client import SyncAgentClient
from harness.testing import WorkflowTimeout
from tests.integration.conftest import wait_until

pytestmark = pytest.mark.integration
APP = Path(__file__).resolve().parents[2] / "samples" / "workflows"


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return APP


@pytest.fixture(autouse=True)
def _script(chat_script):
    chat_script.set(json.loads((APP / "fake_model.json").read_text(encoding="utf-8")))


def test_run_returns_output_events_and_status(workflow_runner):
    run = workflow_runner.run("shared_state", {"doc_id": "r1", "text": "to be or not"})
    assert run.runtime_status == "Completed"
    assert run.output == {"doc_id": "r1", "words": 4, "text": "to be or not"}
    assert run.kinds()[0] == "started" and run.kinds()[-1] == "status"
    assert [e.id for e in run.events] == list(range(len(run.events)))
    assert [d["executor"] for d in run.of("executor_invoked")] == ["store_document", "count_words", "report"]
    assert run.of("executor_completed", "count_words")[0]["state"] == ["words:r1"]
    assert run.of("output") == [{"executor": "report", "data": run.output}]
    assert run.executors == {"store_document": "completed", "count_words": "completed", "report": "completed"}
    assert run.id.startswith("test-run-returns-output")  # the test named in the instance id


def test_agent_executors_report_their_text_and_tokens(workflow_runner):
    run = workflow_runner.run("expert_review", "why is the sky blue")
    answers = {d["executor"]: d for d in run.of("executor_completed") if d["kind"] == "agent"}
    assert answers["Physicist"]["text"] == "Physically, it is about energy and motion."
    assert answers["Chemist"]["usage"]["total_tokens"] > 0
    # the agents' text as it streamed (agent_update), apart from the numbered events
    assert all(u.kind == "agent_update" and u.id == -1 for u in run.updates)
    assert run.streamed_text("Physicist") in ("", "Physically, it is about energy and motion.")
    assert run.output == {
        "Physicist": "Physically, it is about energy and motion.",
        "Chemist": "Chemically, it is about bonds breaking and forming.",
    }


def test_approval_is_answered_and_the_run_followed_to_its_end(workflow_runner):
    run = workflow_runner.start("content_approval", "Announce Nimbus")
    request = run.wait_for_request()
    assert request["sourceExecutor"] == "request_approval"
    assert request["responseSchema"]["properties"]["approved"]["type"] == "boolean"
    assert run.executors["request_approval"] == "waiting"
    run.respond({"approved": False, "feedback": "shorter"})
    run.wait()
    assert run.output == "sent back: shorter"
    assert run.of("request_answered")[0]["response"] == {"approved": False, "feedback": "shorter"}


def test_a_request_inside_a_sub_workflow(workflow_runner):
    run = workflow_runner.start("refund_order", {"order_id": "o-9", "amount": 1.5})
    assert run.wait_for_request()["requestId"].startswith("approval~")
    run.respond({"approved": True})
    assert run.wait().output == "order closed: refund of 1.50 for o-9 approved"


def test_a_run_waiting_for_a_person_times_out_saying_so(workflow_runner):
    run = workflow_runner.start("content_approval", "Announce Nimbus")
    run.wait_for_request()
    with pytest.raises(WorkflowTimeout, match=r"(?s)did not end within 1 s.*waits for a person: request"):
        run.wait(timeout=1)


def test_waiting_for_a_request_that_never_comes_fails_at_once(workflow_runner):
    run = workflow_runner.start("shared_state", {"doc_id": "r2", "text": "x"})
    with pytest.raises(WorkflowTimeout, match="ended Completed without asking a person"):
        run.wait_for_request()


def test_app_environment_runs_workflows_without_pytest_fixtures(function_host):
    from harness.testing import AppEnvironment

    with AppEnvironment.from_url(function_host.url) as env:
        run = env.workflows.run("shared_state", {"doc_id": "env", "text": "one two"})
        assert run.output == {"doc_id": "env", "words": 2, "text": "one two"}
        waiting = env.workflows.start("content_approval", "Announce Nimbus")
        waiting.wait_for_request()
    with SyncAgentClient(function_host.url) as client:  # leaving the block terminated what still ran
        status = client.wait(waiting.id, timeout=30)
    assert status["runtimeStatus"] == "Terminated"


def test_the_event_reader_rides_out_a_host_crash(workflow_runner, function_host):
    run = workflow_runner.start("content_approval", "Announce Nimbus")
    run.wait_for_request()
    with ThreadPoolExecutor(1) as pool:
        following = pool.submit(run.wait, 90)  # reading the stream while the host goes down
        wait_until(lambda: run.events, 30, "the first events")
        function_host.restart(kill=True)
        run.respond({"approved": True})
        following.result()
    assert run.output.startswith("published: ")
    assert [e.id for e in run.events] == list(range(len(run.events)))  # none lost, none twice
