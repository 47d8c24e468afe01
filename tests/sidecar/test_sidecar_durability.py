"""The sidecar's promises across crashes: a sidecar SIGKILLed mid orchestration and started again
finishes it, each activity's result recorded once; a worker SIGKILLed mid activity gets it again."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from durabletask import client as dt_client
from durabletask import task

from .conftest import SidecarProcess, kill, new_client, new_id, running_worker, spawn, stop, wait_for

HERE = Path(__file__).resolve().parent
Status = dt_client.OrchestrationStatus


entered = threading.Event()
release = threading.Event()
calls: list[str] = []


def recorded(ctx: task.ActivityContext, name: str) -> str:
    calls.append(name)
    if name == "second":
        entered.set()
        release.wait(30)
    return f"result {name}"


def three_steps(ctx: task.OrchestrationContext, _: Any) -> Any:
    results = []
    for name in ("first", "second", "third"):
        results.append((yield ctx.call_activity(recorded, input=name)))
    return results


def test_sidecar_killed_mid_orchestration(sidecar_process: SidecarProcess) -> None:
    with running_worker(sidecar_process.address, [three_steps], [recorded]):
        client = new_client(sidecar_process.address)
        iid = client.schedule_new_orchestration(three_steps, instance_id=new_id())
        client.close()
        assert entered.wait(30), "the second activity never started"
        assert sidecar_process.process is not None
        kill(sidecar_process.process)  # SIGKILL while the second activity runs
        release.set()  # its answer goes nowhere: the sidecar that asked is gone
        sidecar_process.start()
        # Watched over HTTP: gRPC channels to the address share a connection in reconnect back-off.
        wait_for(lambda: sidecar_process.finished(iid), 60)
    body = sidecar_process.instance(iid)
    assert body["runtimeStatus"] == "Completed", body
    assert body["output"] == ["result first", "result second", "result third"]
    completed = [e["Result"] for e in body["historyEvents"] if e["EventType"] == "TaskCompleted"]
    assert completed == ["result first", "result second", "result third"]  # each recorded once
    assert calls.count("first") == 1 and calls.count("third") == 1
    assert calls.count("second") == 2  # run again after the restart: activities are at-least-once


def napper(ctx: task.OrchestrationContext, seconds: float) -> Any:
    yield ctx.create_timer(timedelta(seconds=seconds))
    return "woke"


def timer_of(sidecar: SidecarProcess, iid: str) -> datetime | None:
    """When the instance's timer is due, once its history shows it."""
    for event in sidecar.instance(iid)["historyEvents"]:
        if event["EventType"] == "TimerCreated":
            return datetime.fromisoformat(event["FireAt"].replace("Z", "+00:00"))
    return None


def test_timer_due_while_down_fires_at_start(sidecar_process: SidecarProcess) -> None:
    with running_worker(sidecar_process.address, [napper], []):
        client = new_client(sidecar_process.address)
        iid = client.schedule_new_orchestration(napper, input=1.0, instance_id=new_id())
        client.wait_for_orchestration_start(iid, timeout=30)
        client.close()
        wait_for(lambda: timer_of(sidecar_process, iid) is not None)
        fire_at = timer_of(sidecar_process, iid)
        assert sidecar_process.process is not None and fire_at is not None
        kill(sidecar_process.process)
        wait_for(lambda: datetime.now(UTC) > fire_at)  # the timer comes due while no sidecar runs
        sidecar_process.start()
        wait_for(lambda: sidecar_process.finished(iid), 60)
    body = sidecar_process.instance(iid)
    assert body["runtimeStatus"] == "Completed" and body["output"] == "woke", body


def test_worker_killed_mid_activity(sidecar_process: SidecarProcess, tmp_path: Path) -> None:
    folder = tmp_path / "calls"
    folder.mkdir()
    script = [sys.executable, str(HERE / "worker_proc.py"), sidecar_process.address, str(folder)]
    doomed = spawn(script, tmp_path / "worker1.log", BLOCK_STEP="second")
    client = new_client(sidecar_process.address)
    iid = client.schedule_new_orchestration("two_steps", instance_id=new_id())
    client.close()
    wait_for(lambda: (folder / f"second-{doomed.pid}").exists())
    kill(doomed)  # SIGKILL mid activity
    survivor = spawn(script, tmp_path / "worker2.log")
    try:
        wait_for(lambda: sidecar_process.finished(iid), 60)
    finally:
        stop(survivor)
    body = sidecar_process.instance(iid)
    assert body["runtimeStatus"] == "Completed", body
    assert body["output"] == ["done first", "done second"]
    # The first step ran once (its result was recorded before the kill); the second ran in both.
    assert sorted(p.name for p in folder.iterdir()) == sorted(
        [f"first-{doomed.pid}", f"second-{doomed.pid}", f"second-{survivor.pid}"]
    )
    assert len([e for e in body["historyEvents"] if e["EventType"] == "TaskCompleted"]) == 2
