"""`replay-check` on histories the local host really recorded (issue 25): every kind of event the
engine produces (activities, fan-out, retries, timers, sub-orchestrations, external events, entity
calls and signals, continue-as-new, failures, an instance still running), as the Durable HTTP API
serves them and as the store keeps them (raw), replays against the unchanged app; a changed app is
caught at the right event with the right reason; and the command's exit codes."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.cli.main import main
from harness.host import LocalHost
from harness.replay import check_run, folder_orchestrators, runs_from

from .test_host_orchestrations import ORCH_APP, start, status, wait_done, wait_for

SHOW = {"showHistory": "true", "showHistoryOutput": "true", "showInput": "true"}


async def _raise(http: aiohttp.ClientSession, links: dict, name: str, value: Any) -> None:
    async with http.post(links["sendEventPostUri"].replace("{eventName}", name), json=value) as resp:
        assert resp.status == 202


async def _recorded(http: aiohttp.ClientSession, host: LocalHost, links: dict) -> tuple[dict, dict]:
    """(served, raw): the status with its history as the API serves it, and the stored history."""
    _, served = await status(http, links["statusQueryGetUri"], **SHOW)
    assert host.instances is not None
    record = await host.instances.read(links["id"])
    assert record is not None
    raw = {"name": record.name, "instanceId": record.instance_id, "history": record.history}
    return served, raw


async def _until_raised(http: aiohttp.ClientSession, links: dict, timeout: float = 10.0) -> None:
    """Wait (bounded) until the instance's history shows the event raised to it."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        _, body = await status(http, links["statusQueryGetUri"], **SHOW)
        if any(e["EventType"] == "EventRaised" for e in body.get("historyEvents") or []):
            return
        assert asyncio.get_running_loop().time() < deadline, body
        await asyncio.sleep(0.05)


async def _histories(host: LocalHost, http: aiohttp.ClientSession) -> dict[str, tuple[dict, dict]]:
    """One recorded instance per kind of event, keyed by what it shows."""
    done: dict[str, dict] = {}
    done["activities"] = await start(http, host, "hello_sequence", ["A", "B"])
    done["fan-out"] = await start(http, host, "fan_out", {"n": 3})
    done["retry"] = await start(
        http, host, "with_retry", {"key": uuid.uuid4().hex, "failures": 1, "attempts": 3}
    )
    done["retry-exhausted"] = await start(
        http, host, "with_retry", {"key": uuid.uuid4().hex, "failures": 5, "attempts": 2}
    )
    done["timer"] = await start(http, host, "approval", {"timeout": 0.2})
    done["sub-orchestrations"] = await start(http, host, "parent", {"child_id": uuid.uuid4().hex})
    done["entities"] = await start(http, host, "entities", uuid.uuid4().hex)
    done["failure"] = await start(http, host, "failing", {})
    done["clock-and-uuid"] = await start(http, host, "deterministic")
    approval = await start(http, host, "approval", {"timeout": 30})
    await wait_for(http, approval, lambda s: s.get("customStatus") == "waiting for approval")
    await _raise(http, approval, "Approval", {"ok": True})
    done["event-beats-timer"] = approval
    counting = await start(http, host, "counting")
    for value in ("a", "b", "c"):
        await _raise(http, counting, "Item", value)
    done["continue-as-new"] = counting
    done["call-http"] = await start(http, host, "http_call")
    running = await start(http, host, "two_events")
    await _raise(http, running, "Step", "first")
    terminated = await start(http, host, "approval", {"timeout": 600})
    await wait_for(http, terminated, lambda s: s.get("customStatus") == "waiting for approval")
    for action in ("suspend", "resume", "terminate"):
        async with http.post(terminated[f"{action}PostUri"].replace("{text}", action)) as resp:
            assert resp.status == 202
        if action == "suspend":
            await wait_for(http, terminated, lambda s: s["runtimeStatus"] == "Suspended")
    done["suspended-resumed-terminated"] = terminated
    for links in done.values():
        await wait_done(http, links)
    await _until_raised(http, running)
    recorded = {kind: await _recorded(http, host, links) for kind, links in done.items()}
    recorded["running"] = await _recorded(http, host, running)
    return recorded


@pytest.fixture
async def recorded(host: LocalHost, http: aiohttp.ClientSession) -> dict[str, tuple[dict, dict]]:
    return await _histories(host, http)


@pytest.fixture
async def host(azurite_connstr: str, hub: str):
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


def _changed_app(tmp_path: Path, *edits: tuple[str, str]) -> Path:
    """A copy of the orchestration app with `edits` (old, new) made to its code."""
    app = tmp_path / "changed_app"
    shutil.copytree(ORCH_APP, app)
    code = (app / "function_app.py").read_text()
    for old, new in edits:
        assert old in code, old
        code = code.replace(old, new)
    (app / "function_app.py").write_text(code)
    return app


async def test_every_kind_of_history_replays_against_the_unchanged_app(recorded, tmp_path, capsys):
    orchestrators = folder_orchestrators(ORCH_APP)
    for kind, (served, raw) in recorded.items():
        for shape, item in (("served", served), ("raw", raw)):
            (run,) = runs_from(item, f"{kind} ({shape})")
            result = check_run(run, orchestrators)
            assert result.ok, (kind, shape, result.divergence, item)
    assert recorded["running"][0]["runtimeStatus"] == "Running"
    # The command over files: a list of statuses in one file, raw histories in another.
    served_file, raw_file = tmp_path / "served.json", tmp_path / "raw.json"
    served_file.write_text(json.dumps([s for s, _ in recorded.values()]))
    raw_file.write_text(json.dumps([r for _, r in recorded.values()]))
    assert main(["replay-check", str(served_file), str(raw_file), "--app", str(ORCH_APP)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 * len(recorded) and all(line.startswith("ok ") for line in lines)


# (what the code change is, the history it breaks, the reason reported, the served and raw event index
# the report points at (None: not detectable in that shape), a word the code side shows)
CHANGES = [
    (
        ('context.call_activity("say_hello", city)', 'context.call_activity("say_hi", city)'),
        "activities",
        "different name",
        "say_hi",
    ),
    (
        ('context.call_activity("say_hello", city)', 'context.call_activity("say_hello", city.lower())'),
        "activities",
        "different input",
        '"a"',
    ),
    (
        ('seconds=spec.get("timeout", 30)', 'seconds=spec.get("timeout", 30) + 5'),
        "timer",
        "different timer time",
        "timer",
    ),
    (('"add", 10)', '"add", 11)'), "entities", "different input", "11"),
    (
        ('counter = df.EntityId("Counter", key)', 'counter = df.EntityId("Counter", key + "x")'),
        "entities",
        "different entity",
        "x",
    ),
    (
        ('doubled = yield context.call_activity("Double", sum(squares))', "doubled = sum(squares)"),
        "fan-out",
        "fewer actions than recorded",
        "completed",
    ),
    (
        (
            '    return {"count": len(squares)',
            '    yield context.call_activity("say_hello", "extra")\n    return {"count": len(squares)',
        ),
        "fan-out",
        "more actions than recorded",
        "extra",
    ),
    (
        ('after = yield context.call_activity("say_hello", "after retry")', "after = 1 / 0"),
        "retry",
        "an exception the history did not have",
        "division by zero",
    ),
    (
        (
            'first = yield context.call_sub_orchestrator("hello_sequence", ["A", "B"])',
            'first = yield context.call_sub_orchestrator("fan_out", {"n": 1})',
        ),
        "sub-orchestrations",
        "different name",
        "fan_out",
    ),
    (
        ('wait_for_external_event("Approval")', 'wait_for_external_event("Approved")'),
        "event-beats-timer",
        "fewer actions than recorded",
        "not scheduled",
    ),
]


async def test_a_changed_app_diverges_at_the_event_that_changed(recorded, tmp_path):
    for n, (edit, kind, reason, shown) in enumerate(CHANGES):
        app = _changed_app(tmp_path / str(n), edit)
        orchestrators = folder_orchestrators(app)
        for shape, item in zip(("served", "raw"), recorded[kind], strict=True):
            (run,) = runs_from(item, kind)
            result = check_run(run, orchestrators)
            assert result.divergence is not None, (edit, shape)
            assert reason in result.divergence.reason, (edit, shape, result.divergence)
            assert shown in result.divergence.code, (edit, shape, result.divergence)
            assert result.divergence.index is None or 0 <= result.divergence.index


async def test_an_in_flight_instance_shows_its_pending_work_and_a_change_to_it_is_caught(
    host, http, tmp_path
):
    links = await start(http, host, "fan_out", {"n": 2, "sleep": 2})
    deadline = asyncio.get_running_loop().time() + 10
    while True:  # bounded: until the pending activities show (the API shows them as scheduled)
        _, served = await status(http, links["statusQueryGetUri"], **SHOW)
        pending = [e for e in served.get("historyEvents") or [] if e["EventType"] == "TaskScheduled"]
        if len(pending) == 2:
            break
        assert asyncio.get_running_loop().time() < deadline, served
        await asyncio.sleep(0.05)
    assert served["runtimeStatus"] == "Running"
    assert pending[0]["Name"] == "slow_square" and pending[0]["Input"] == {"n": 0, "sleep": 2}
    (run,) = runs_from(served, "in flight")
    assert check_run(run, folder_orchestrators(ORCH_APP)).ok
    changed = _changed_app(tmp_path, ('{"n": i, "sleep"', '{"n": i + 1, "sleep"'))
    divergence = check_run(run, folder_orchestrators(changed)).divergence
    assert divergence is not None and divergence.reason == "different input"
    assert divergence.index == served["historyEvents"].index(pending[0])
