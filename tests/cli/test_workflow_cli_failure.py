"""A workflow whose executor raises, through the CLI and the `workflow_runner` fixture
(tests/integration/workflow_app's `boom`): the exit codes, the error naming the executor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.cli.main import main

pytestmark = pytest.mark.integration
APP = Path(__file__).resolve().parents[1] / "integration" / "workflow_app"


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return APP


def test_cli_run_wait_status_and_watch_of_a_failing_workflow(app_url, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    assert main(["workflow", "run", "boom", "hello", "--wait", "--id", "cli-boom-1", "--url", app_url]) == 1
    captured = capsys.readouterr()
    assert "instance 'cli-boom-1' ended Failed" in captured.err
    assert "explode failed" in captured.out and "kaboom on HELLO" in captured.out
    assert main(["workflow", "watch", "cli-boom-1", "--json", "--url", app_url]) == 1
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    failed = [e["data"] for e in events if e["event"] == "executor_failed"]
    assert failed[0]["executor"] == "explode" and events[-1]["data"]["runtimeStatus"] == "Failed"


def test_runner_reports_the_failure(workflow_runner):
    run = workflow_runner.run("boom", "again")
    assert run.runtime_status == "Failed" and run.output is None
    assert "explode" in run.error and "kaboom on AGAIN" in run.error
    assert run.executors["explode"] == "failed"
    assert run.kinds()[-2:] == ["executor_failed", "status"]
