"""SIGKILL of the host in the middle of orchestrations: after a restart every instance finishes with
the output it would have had without the crash."""

from __future__ import annotations

import asyncio
import signal as signals
import time
from datetime import UTC, datetime
from typing import Any

import aiohttp

from .test_host_orchestrations import API, ORCH_APP, status


async def start_api(http: aiohttp.ClientSession, url: str, name: str, payload: Any = None) -> str:
    """Start through the instance API; returns the instance id."""
    async with http.post(f"{url}{API}/orchestrators/{name}", json=payload) as resp:
        assert resp.status == 202, await resp.text()
        return (await resp.json())["id"]


async def poll(
    http: aiohttp.ClientSession, url: str, iid: str, predicate: Any, timeout: float = 20.0
) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        try:
            _, body = await status(http, f"{url}{API}/instances/{iid}", showHistory="true")
        except aiohttp.ClientError:
            body = {}
        if body and predicate(body):
            return body
        await asyncio.sleep(0.02)
    raise AssertionError(f"condition not met for {iid}: {body}")


def completions(body: dict) -> int:
    return sum(1 for e in body.get("historyEvents") or [] if e["EventType"] == "TaskCompleted")


def kill(procs: list) -> None:
    procs[-1].send_signal(signals.SIGKILL)
    procs[-1].wait()


async def test_sigkill_mid_fan_out(host_process, http: aiohttp.ClientSession):
    start, procs = host_process
    url = start(ORCH_APP)
    iid = await start_api(http, url, "fan_out", {"n": 40, "sleep": 0.05})
    at_kill = await poll(http, url, iid, lambda b: completions(b) >= 5)
    kill(procs)
    assert at_kill["runtimeStatus"] == "Running" and completions(at_kill) < 41  # the crash hit mid fan-out
    url = start(ORCH_APP)
    done = await poll(http, url, iid, lambda b: b["runtimeStatus"] in ("Completed", "Failed"))
    squares = sum(i * i for i in range(40))
    assert done["output"] == {"count": 40, "sum": squares, "doubled": 2 * squares}


async def test_timer_that_came_due_while_the_host_was_down_fires_at_start(host_process, http):
    start, procs = host_process
    url = start(ORCH_APP)
    iid = await start_api(http, url, "timer_only", 1)
    running = await poll(
        http, url, iid, lambda b: any(e["EventType"] == "TimerCreated" for e in b["historyEvents"])
    )
    kill(procs)
    fire_at = next(e["FireAt"] for e in running["historyEvents"] if e["EventType"] == "TimerCreated")
    due = datetime.fromisoformat(fire_at.replace("Z", "+00:00"))
    await asyncio.sleep(max(0.0, (due - datetime.now(UTC)).total_seconds()) + 0.1)  # due while down
    url = start(ORCH_APP)
    done = await poll(http, url, iid, lambda b: b["runtimeStatus"] == "Completed", timeout=10)
    assert done["output"] == "fired"


async def test_event_accepted_just_before_a_sigkill_is_not_lost(host_process, http):
    start, procs = host_process
    url = start(ORCH_APP)
    iid = await start_api(http, url, "approval", {"timeout": 60})
    await poll(http, url, iid, lambda b: b.get("customStatus") == "waiting for approval")
    async with http.post(f"{url}{API}/instances/{iid}/raiseEvent/Approval", json={"by": "ann"}) as resp:
        assert resp.status == 202
    kill(procs)  # right after the 202: the event is persisted, maybe not yet applied
    url = start(ORCH_APP)
    done = await poll(http, url, iid, lambda b: b["runtimeStatus"] == "Completed")
    assert done["output"] == {"approved": {"by": "ann"}}


async def test_sigkill_during_entity_calls_applies_each_operation_once(host_process, http):
    start, procs = host_process
    url = start(ORCH_APP)
    ids = [await start_api(http, url, "entities", f"crash{i}") for i in range(6)]
    called = await poll(
        http, url, ids[0], lambda b: any(e["EventType"] == "EntityCalled" for e in b["historyEvents"])
    )
    kill(procs)
    assert called["runtimeStatus"] == "Running"  # killed while calls were under way
    url = start(ORCH_APP)
    for iid in ids:
        done = await poll(http, url, iid, lambda b: b["runtimeStatus"] in ("Completed", "Failed"))
        assert done["output"] == {"after_add": 15, "current": 15, "error": "counter refuses"}, done
