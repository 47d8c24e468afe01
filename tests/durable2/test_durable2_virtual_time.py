"""Virtual time applies to 2.x apps too: the sample's 72-hour approval timer fires at once when the
host runs on an `auto` virtual clock, and the orchestrator's own clock (its replay-safe
`current_utc_datetime`) agrees with the host's."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import httpx
import pytest

from harness.azurite import Azurite
from harness.client import SyncAgentClient
from harness.stack import FunctionHost
from harness.testing.orchestrations import OrchestrationRun

from .conftest import SAMPLE, app_host


@pytest.fixture(scope="module")
def virtual_host(
    azurite: Azurite, durable2_python: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FunctionHost]:
    logs = tmp_path_factory.mktemp("virtual2")
    with app_host(SAMPLE, azurite, durable2_python, logs, virtual_time="auto") as host:
        yield host


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_a_72_hour_approval_times_out_at_once(virtual_host: FunctionHost) -> None:
    answer = httpx.post(f"{virtual_host.url}/api/orchestrators/approval", json=72, timeout=30)
    assert answer.status_code == 202, answer.text
    run = OrchestrationRun(SyncAgentClient(virtual_host.url), answer.json()["id"], timeout=30, interval=0.1)
    status = run.wait()
    assert status["output"] == "timed out", status
    created = next(e for e in run.history if e["EventType"] == "TimerCreated")
    fired = next(e for e in run.history if e["EventType"] == "TimerFired")
    started = stamp(run.history[0]["Timestamp"])
    assert stamp(created["FireAt"]) - started >= timedelta(hours=72) - timedelta(seconds=1)
    assert stamp(fired["Timestamp"]) >= stamp(created["FireAt"])
