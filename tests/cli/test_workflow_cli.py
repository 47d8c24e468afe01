"""`workflow run|status|respond|watch` against samples/workflows in the session's real host
(Azurite, the scripted fake model): what a user types, what the terminal shows, the exit codes and
the one-line errors."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from harness.cli.main import main

from .fake_instances import FakeDurableApi
from .test_cli import one_line_error

pytestmark = pytest.mark.integration
APP = Path(__file__).resolve().parents[2] / "samples" / "workflows"


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return APP


@pytest.fixture(autouse=True)
def _script(chat_script, monkeypatch):
    chat_script.set(json.loads((APP / "fake_model.json").read_text(encoding="utf-8")))
    monkeypatch.setenv("COLUMNS", "200")


def cli(capsys, *words: str) -> tuple[int, str]:
    code = main(list(words))
    return code, capsys.readouterr().out


def test_run_wait_shows_the_output_and_executors(app_url, capsys):
    code, out = cli(
        capsys,
        "workflow",
        "run",
        "shared_state",
        '{"doc_id": "c1", "text": "a b c"}',
        "--wait",
        "--url",
        app_url,
    )
    assert code == 0, out
    assert "Completed" in out and '"words": 3' in out
    assert "store_document completed" in out and "report completed" in out


def test_run_text_input_then_status_by_id_alone(app_url, capsys):
    run_id = f"cli-spam-{uuid.uuid4().hex[:8]}"
    code, out = cli(
        capsys, "workflow", "run", "spam_triage", "Lunch tomorrow?", "--id", run_id, "--url", app_url
    )
    assert code == 0 and run_id in out and f"workflow watch {run_id}" in out
    code, out = cli(capsys, "workflow", "watch", run_id, "--url", app_url)
    assert code == 0
    lines = out.strip().splitlines()
    assert lines[0].split() == ["0", "▶", "started", "input", "Lunch", "tomorrow?"]
    assert any("✓ SpamDetector  NOT SPAM" in line for line in lines)
    assert "■ Completed  sent: Thank you" in lines[-1]
    code, out = cli(capsys, "workflow", "status", run_id, "--json", "--url", app_url)
    status = json.loads(out)
    assert status["runtimeStatus"] == "Completed" and status["output"].startswith("sent: ")
    assert status["customStatus"]["executors"]["EmailAssistant"] == "completed"
    assert "quarantine" not in status["customStatus"]["executors"]  # the switch-case took the other edge


def test_approval_round_trip(app_url, capsys):
    run_id = f"cli-approve-{uuid.uuid4().hex[:8]}"
    code, out = cli(
        capsys,
        "workflow",
        "run",
        "content_approval",
        "Announce Nimbus",
        "--id",
        run_id,
        "--wait",
        "--url",
        app_url,
    )
    assert code == 0, out  # waiting for a person is where --wait stops
    assert "request_approval waiting" in out and "workflow respond" in out
    code, out = cli(capsys, "workflow", "status", run_id, "--json", "--url", app_url)
    (request,) = json.loads(out)["pendingHumanInputRequests"]
    request_id = request["requestId"]

    assert main(["workflow", "respond", run_id, request_id, '{"approved": "maybe"}', "--url", app_url]) == 2
    assert "ApprovalResponse" in one_line_error(capsys)
    assert main(["workflow", "respond", run_id, "nope", '{"approved": true}', "--url", app_url]) == 2
    assert request_id in one_line_error(capsys)
    assert main(["workflow", "respond", run_id, request_id, "{approved", "--url", app_url]) == 2
    assert "not valid JSON" in one_line_error(capsys)

    code, out = cli(capsys, "workflow", "respond", run_id, request_id, '{"approved": true}', "--url", app_url)
    assert code == 0 and "Answered" in out
    code, out = cli(capsys, "workflow", "watch", run_id, "--json", "--url", app_url)
    received = [json.loads(line) for line in out.strip().splitlines()]
    events = [e for e in received if e["event"] != "agent_update"]  # the Writer's streamed text
    assert [e["id"] for e in events] == list(range(len(events)))
    streamed = "".join(e["data"].get("text", "") for e in received if e["event"] == "agent_update")
    assert streamed in ("", "Meet Nimbus, our new cloud notebook. It syncs everywhere.")
    kinds = [e["event"] for e in events]
    assert "request_info" in kinds and "request_answered" in kinds and kinds[-1] == "status"
    assert events[-1]["data"]["output"].startswith("published: ")
    code, out = cli(
        capsys, "workflow", "watch", run_id, "--json", "--after", str(len(events) - 2), "--url", app_url
    )
    assert [json.loads(line)["id"] for line in out.strip().splitlines()] == [len(events) - 1]


def test_a_sub_workflow_request_is_answered_through_the_parent(app_url, capsys):
    run_id = f"cli-refund-{uuid.uuid4().hex[:8]}"
    code, out = cli(
        capsys,
        "workflow",
        "run",
        "refund_order",
        '{"order_id": "o-1", "amount": 3}',
        "--id",
        run_id,
        "--wait",
        "--json",
        "--url",
        app_url,
    )
    assert code == 0, out
    (request,) = json.loads(out)["pendingHumanInputRequests"]
    assert request["requestId"].startswith("approval~")
    child = f"{run_id}~approval~0"
    assert main(["workflow", "status", child, "--url", app_url]) == 2
    assert f"inside instance {run_id!r}" in one_line_error(capsys)
    code, _ = cli(
        capsys, "workflow", "respond", run_id, request["requestId"], '{"approved": true}', "--url", app_url
    )
    assert code == 0
    code, out = cli(capsys, "workflow", "watch", run_id, "--url", app_url)
    assert code == 0 and "order closed: refund of 3.00 for o-1 approved" in out.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["run", "no_such_workflow", "x"], "unknown workflow 'no_such_workflow'"),
        (["run", "shared_state", '{"doc_id": "x"}'], "refused the input"),
        (["run", "shared_state", "x", "--id", "a/b"], "runId"),
        (["status", "no-such-instance"], "no instance 'no-such-instance'"),
        (["watch", "no-such-instance"], "no instance 'no-such-instance'"),
        (["respond", "no-such-instance", "r1", "{}"], "no instance 'no-such-instance'"),
        (["watch", "x", "--after", "-5"], "--after"),
    ],
)
def test_bad_input_is_one_line(app_url, capsys, words, message):
    assert main(["workflow", *words, "--url", app_url]) == 2
    assert message in one_line_error(capsys)


def test_an_instance_of_a_plain_orchestrator_is_not_a_workflow(capsys):
    fake = FakeDurableApi()
    fake.add("plain-1", "hello", "Completed")
    with fake.mock() as url:
        assert main(["workflow", "status", "plain-1", "--url", url]) == 2
    assert "not a workflow instance (its orchestrator is 'hello')" in one_line_error(capsys)


def test_a_host_that_is_not_running(dead_url, capsys):
    assert main(["workflow", "status", "x", "--url", dead_url]) == 2
    assert "cannot connect" in one_line_error(capsys)
