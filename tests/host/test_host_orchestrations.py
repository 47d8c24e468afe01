"""Orchestrations on the local host, through the real DurableOrchestrationClient (the app's HTTP
triggers) and the instance API, with state in the session's Azurite."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.host import LocalHost
from harness.host.clock import Clock

ORCH_APP = Path(__file__).resolve().parent / "orchestration_app"
API = "/runtime/webhooks/durabletask"


@pytest.fixture
async def host(azurite_connstr: str, hub: str) -> AsyncIterator[LocalHost]:
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


async def start(
    http: aiohttp.ClientSession, host: LocalHost, name: str, payload: Any = None, **params: str
) -> dict:
    """Start through the app's own trigger (client.start_new + create_check_status_response)."""
    data = json.dumps(payload) if payload is not None else None
    async with http.post(f"{host.url}/api/start/{name}", data=data, params=params) as resp:
        assert resp.status == 202, await resp.text()
        return await resp.json()


async def status(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, dict]:
    async with http.get(url, params=params) as resp:
        return resp.status, await resp.json(content_type=None)


async def wait_done(http: aiohttp.ClientSession, links: dict, timeout: float = 15.0, **params: str) -> dict:
    """Poll the check-status URL until the instance has finished."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        _, body = await status(http, links["statusQueryGetUri"], **params)
        if body.get("runtimeStatus") in ("Completed", "Failed", "Terminated"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"instance did not finish: {body}")


async def test_activity_chain_completes_with_output_custom_status_and_history(host, http):
    links = await start(http, host, "hello_sequence")
    assert links["id"] and links["statusQueryGetUri"].startswith(host.url)
    done = await wait_done(http, links, showHistory="true", showHistoryOutput="true")
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == ["Hello Tokyo", "Hello Seattle", "Hello London"]
    assert done["customStatus"] == {"done": 3}
    kinds = [e["EventType"] for e in done["historyEvents"]]
    assert kinds == [
        "ExecutionStarted",
        "TaskCompleted",
        "TaskCompleted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert done["historyEvents"][1]["FunctionName"] == "say_hello"
    assert done["historyEvents"][1]["Result"] == "Hello Tokyo"


async def test_fan_out_fan_in_and_an_async_activity_registered_under_its_binding_name(host, http):
    links = await start(http, host, "fan_out", {"n": 25})
    done = await wait_done(http, links)
    squares = sum(i * i for i in range(25))
    assert done["output"] == {"count": 25, "sum": squares, "doubled": 2 * squares}


async def test_wait_for_completion_answers_with_the_output(host, http):
    async with http.post(f"{host.url}/api/run/Renamed", data="21") as resp:
        assert resp.status == 200
        assert await resp.json() == 42


async def test_non_generator_orchestrator(host, http):
    async with http.post(f"{host.url}/api/run/plain", data=json.dumps({"a": [1, 2]})) as resp:
        assert resp.status == 200
        assert await resp.json() == {"plain": {"a": [1, 2]}}


async def test_retry_succeeds_after_failures_and_numbering_continues(host, http):
    key = uuid.uuid4().hex
    links = await start(http, host, "with_retry", {"key": key, "failures": 2, "attempts": 3})
    done = await wait_done(http, links)
    assert done["output"] == {"result": "ok after 3", "after": "Hello after retry"}


async def test_retry_gives_up_after_the_last_attempt(host, http):
    key = uuid.uuid4().hex
    links = await start(http, host, "with_retry", {"key": key, "failures": 5, "attempts": 2})
    done = await wait_done(http, links)
    assert done["runtimeStatus"] == "Completed"
    assert "attempt 2 failed" in done["output"]["failed"]


async def test_activity_exception_is_raised_in_the_orchestrator_and_fails_it_when_unhandled(host, http):
    caught = await wait_done(http, await start(http, host, "failing", {"catch": True}))
    assert caught["output"] == {"caught": "Activity function 'explode' failed: ValueError: caught boom"}
    failed = await wait_done(http, await start(http, host, "failing", {}))
    assert failed["runtimeStatus"] == "Failed"
    assert "Orchestrator function 'failing' failed" in failed["output"]
    assert "uncaught boom" in failed["output"]


async def test_unknown_activity_and_call_http_fail_with_a_message_naming_them(host, http):
    missing = await wait_done(http, await start(http, host, "failing", {"activity": "no_such_activity"}))
    assert missing["runtimeStatus"] == "Failed"
    assert "activity function 'no_such_activity' is not defined" in missing["output"]
    http_call = await wait_done(http, await start(http, host, "http_call"))
    assert http_call["runtimeStatus"] == "Failed"
    assert "call_http is not supported by the local host" in http_call["output"]


async def test_sub_orchestrations_with_explicit_id_and_retry(host, http):
    child_id = "child-" + uuid.uuid4().hex
    done = await wait_done(http, await start(http, host, "parent", {"child_id": child_id}), timeout=20)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"]["first"] == ["Hello A", "Hello B"]
    assert done["output"]["named"] == ["Hello C"]
    assert done["output"]["child_failed"] == "Sub-orchestration 'failing' failed"
    code, child = await status(http, f"{host.url}{API}/instances/{child_id}")
    assert code == 200 and child["runtimeStatus"] == "Completed" and child["output"] == ["Hello C"]


async def test_external_event_wins_over_the_timer_which_is_cancelled(host, http):
    links = await start(http, host, "approval", {"timeout": 30})
    await wait_for(http, links, lambda s: s.get("customStatus") == "waiting for approval")
    async with http.post(
        links["sendEventPostUri"].replace("{eventName}", "Approval"), json={"ok": True}
    ) as resp:
        assert resp.status == 202
    done = await wait_done(http, links, showHistory="true")
    assert done["output"] == {"approved": {"ok": True}}
    assert host.engine is not None and host.engine.scheduler.pending() == 0  # the timer was dropped
    kinds = [e["EventType"] for e in done["historyEvents"]]
    assert "EventRaised" in kinds and "TimerFired" not in kinds


async def test_timer_wins_when_no_event_comes(host, http):
    done = await wait_done(http, await start(http, host, "approval", {"timeout": 0.3}))
    assert done["output"] == {"timed_out": True}


async def test_events_raised_before_the_wait_are_kept_in_order(host, http):
    links = await start(http, host, "two_events")
    url = links["sendEventPostUri"].replace("{eventName}", "Step")
    for value in ("first", "second"):
        async with http.post(url, json=value) as resp:
            assert resp.status == 202
    done = await wait_done(http, links)
    assert done["output"] == ["first", "second"]


async def test_entity_signal_call_and_error_reach_the_orchestration(host, http):
    key = uuid.uuid4().hex
    done = await wait_done(http, await start(http, host, "entities", key), showHistory="true")
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == {"after_add": 15, "current": 15, "error": "counter refuses"}
    calls = [e for e in done["historyEvents"] if e["EventType"] in ("EntityCalled", "EntitySignaled")]
    assert [(e["EventType"], e["Operation"]) for e in calls] == [
        ("EntitySignaled", "add"),
        ("EntityCalled", "add"),
        ("EntityCalled", "get"),
        ("EntityCalled", "fail"),
    ]
    assert calls[0]["InstanceId"] == f"@counter@{key}"
    assert calls[-1]["Error"] == "counter refuses"


async def test_continue_as_new_keeps_events_that_arrive_meanwhile(host, http):
    links = await start(http, host, "counting")
    url = links["sendEventPostUri"].replace("{eventName}", "Item")
    for value in ("a", "b", "c"):
        async with http.post(url, json=value) as resp:
            assert resp.status == 202
    done = await wait_done(http, links)
    assert done["output"] == {"n": 3, "seen": ["a", "b", "c"]}


async def test_new_uuid_and_clock_are_the_same_on_every_replay(host, http):
    links = await start(http, host, "deterministic")
    first_episode = await wait_for(http, links, lambda s: bool(s.get("customStatus")))
    done = await wait_done(http, links)
    output = done["output"]
    # The values the first episode produced are the ones the last replay produced again.
    assert first_episode["customStatus"] == {"first": output["first"], "started": output["started"]}
    # Produced by the last replay (three episodes): the values of the first episode must match.
    assert output["replaying"] is False
    assert output["first"] != output["second"]
    assert uuid.UUID(output["first"]) and output["started"]
    history = await history_of(http, host, done["instanceId"])
    first_started = history[0]["Timestamp"]
    assert output["started"].startswith(first_started[:19])


AHEAD = timedelta(days=5 * 365)


class AheadClock(Clock):
    """Five years ahead of the wall clock: a durable timer armed by the wall clock would never fire."""

    def now(self) -> datetime:
        return super().now() + AHEAD


async def test_the_host_clock_gives_episode_and_history_times_and_fires_durable_timers(
    azurite_connstr, hub, http
):
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub, clock=AheadClock()) as host:
        links = await start(http, host, "deterministic")  # waits on a 200 ms durable timer
        done = await wait_done(http, links)
        history = await history_of(http, host, done["instanceId"])
    year = str((datetime.now(UTC) + AHEAD).year)
    assert done["output"]["started"].startswith(year)  # current_utc_datetime
    assert done["createdTime"].startswith(year) and done["lastUpdatedTime"].startswith(year)
    assert history[0]["Timestamp"].startswith(year) and history[-1]["Timestamp"].startswith(year)


async def wait_for(http: aiohttp.ClientSession, links: dict, predicate: Any, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        _, body = await status(http, links["statusQueryGetUri"])
        if predicate(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met: {body}")


async def history_of(http: aiohttp.ClientSession, host: LocalHost, iid: str) -> list[dict]:
    _, body = await status(http, f"{host.url}{API}/instances/{iid}", showHistory="true")
    return body["historyEvents"]


async def test_an_unknown_sub_orchestrator_fails_the_parent_naming_it(host, http):
    done = await wait_done(http, await start(http, host, "unknown_child"))
    assert done["runtimeStatus"] == "Failed"
    assert "orchestrator function 'no_such_orchestrator' is not defined by this app" in done["output"]


async def test_every_url_of_a_check_status_response_works(host, http):
    links = await start(http, host, "approval", {"timeout": 60})
    await wait_for(http, links, lambda s: s["runtimeStatus"] == "Running")
    async with http.post(links["suspendPostUri"].replace("{text}", "pause")) as resp:
        assert resp.status == 202
    await wait_for(http, links, lambda s: s["runtimeStatus"] == "Suspended")
    async with http.post(links["resumePostUri"].replace("{text}", "go")) as resp:
        assert resp.status == 202
    await wait_for(http, links, lambda s: s["runtimeStatus"] == "Running")
    async with http.post(links["rewindPostUri"].replace("{text}", "x")) as resp:  # only a finished one
        assert resp.status == 409 and "terminate it first" in (await resp.json())["error"]
    async with http.post(links["terminatePostUri"].replace("{text}", "stop now")) as resp:
        assert resp.status == 202
    done = await wait_done(http, links)
    assert done["runtimeStatus"] == "Terminated" and done["output"] == "stop now"
    async with http.post(links["restartPostUri"]) as resp:
        assert resp.status == 202
        again = await resp.json()
    assert again["id"] != links["id"]
    restarted = await wait_for(http, again, lambda s: s["runtimeStatus"] == "Running")
    assert restarted["input"] == {"timeout": 60}
    async with http.delete(links["purgeHistoryDeleteUri"]) as resp:
        assert resp.status == 200 and (await resp.json()) == {"instancesDeleted": 1}
    code, _ = await status(http, links["statusQueryGetUri"])
    assert code == 404


async def test_host_json_durable_settings_are_honoured(host):
    assert host.hub_name  # the fixture overrides the hub; the limits come from host.json
    assert host.config is not None
    assert (host.config.max_activities, host.config.max_orchestrators) == (8, 4)
    assert host.engine is not None and host.engine.settings.max_activities == 8


async def test_signals_of_a_last_episode_and_of_continue_as_new_are_applied_once(host, http):
    """An episode that ends the instance (or its execution) and signals an entity ends once the
    entity acknowledged the signal; each signal is applied once and no acknowledgement lingers."""
    key = uuid.uuid4().hex
    done = await wait_done(http, await start(http, host, "signal_and_finish", {"key": key, "n": 3}))
    assert done["runtimeStatus"] == "Completed" and done["output"] == "signalled"
    async with http.get(f"{host.url}{API}/entities/counter/{key}") as resp:
        assert await resp.json() == 3 + 2 + 1
    assert host.instances is not None and host.engine is not None
    await host.engine.idle()
    record = await host.instances.read(done["instanceId"])
    assert record is not None
    assert await host.instances.messages(done["instanceId"], record.applied) == []


async def test_a_last_signal_to_an_unknown_entity_does_not_keep_the_instance_running(host, http):
    done = await wait_done(http, await start(http, host, "signal_nobody"))
    assert done["runtimeStatus"] == "Completed" and done["output"] == "done"
