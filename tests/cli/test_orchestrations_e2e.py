"""The instance commands and the `orchestration` fixture against the real local host and engine.

samples/human_in_the_loop runs unmodified in the session's host (Azurite, scripted fake model): a
writer agent drafts, the orchestration waits for an `ApprovalResponse` event, then publishes.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from harness.cli.main import main
from harness.client import SyncAgentClient
from harness.formatting import timeline

pytestmark = pytest.mark.integration

APP = Path(__file__).resolve().parents[2] / "samples" / "human_in_the_loop"


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return APP


@pytest.fixture(autouse=True)
def _script(chat_script):
    chat_script.set(json.loads((APP / "fake_model.json").read_text(encoding="utf-8")))


def awaiting(custom: object) -> bool:
    return isinstance(custom, dict) and custom.get("step") == "awaiting_approval"


def test_fixture_drives_the_sample(orchestration):
    run = orchestration.start("content_review", {"topic": "durable agents"})
    waiting = run.wait_for(status="Running", custom_status=awaiting, timeout=30)
    assert waiting["customStatus"]["attempt"] == 1
    run.raise_event("ApprovalResponse", {"approved": True})
    status = run.wait(timeout=30)
    assert status["runtimeStatus"] == "Completed", status
    assert run.output["status"] == "published"
    assert "EventRaised" in run.history_types()
    agent_calls = [row for row in timeline(run.history) if row.agent_session]
    assert agent_calls and agent_calls[0].agent_session == ("writeragent", run.output["sessionId"])


def test_cli_start_raise_status_purge(function_host, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    url = function_host.url
    instance = f"cli-e2e-{uuid.uuid4().hex[:8]}"
    assert (
        main(["start", "content_review", "--input", '{"topic": "cli"}', "--id", instance, "--url", url]) == 0
    )
    assert instance in capsys.readouterr().out
    assert main(["start", "no_such_orchestrator", "--url", url]) == 2
    assert "unknown orchestrator" in capsys.readouterr().err

    with SyncAgentClient(url) as client:
        client.wait(instance, until=lambda s: awaiting(s.get("customStatus")), timeout=30)
    assert main(["instances", "--status", "Running", "--url", url, "--json"]) == 0
    assert instance in [i["instanceId"] for i in json.loads(capsys.readouterr().out)]

    assert main(["raise", instance, "ApprovalResponse", "--data", '{"approved": true}', "--url", url]) == 0
    with SyncAgentClient(url) as client:
        client.wait(instance, timeout=30)
    assert main(["status", instance, "--history", "--url", url]) == 0
    out = capsys.readouterr().out
    for text in ("Completed", "agent writeragent", "event ApprovalResponse", "publish_content"):
        assert text in out, out

    assert main(["purge", instance, "--url", url]) == 0
    assert main(["status", instance, "--url", url]) == 2
    assert f"no instance '{instance}'" in capsys.readouterr().err
