"""Adversarial probes of the local host's orchestration support (app: tests/host/probe_app).

Each test asserts the correct behaviour; the ones that fail on main are bugs (see the report)."""

from __future__ import annotations

import asyncio
import json
import random
import shutil
import signal
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.host import LocalHost
from harness.host.orchestrations import history as h
from harness.host.orchestrations.inbox import acknowledged as orchestration_acks
from harness.host.orchestrations.store import InstanceStore

PROBE_APP = Path(__file__).resolve().parent / "probe_app"
API = "/runtime/webhooks/durabletask"
TERMINAL = ("Completed", "Failed", "Terminated")


@pytest.fixture
async def host(azurite_connstr: str, hub: str) -> AsyncIterator[LocalHost]:
    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


async def start(
    http: aiohttp.ClientSession, base: str, name: str, payload: Any = None, iid: str | None = None
) -> str:
    iid = iid or uuid.uuid4().hex
    data = json.dumps(payload) if payload is not None else None
    async with http.post(
        f"{base}{API}/orchestrators/{name}/{iid}", data=data, headers={"Content-Type": "application/json"}
    ) as resp:
        assert resp.status == 202, await resp.text()
    return iid


async def get_status(http: aiohttp.ClientSession, base: str, iid: str, **params: str) -> tuple[int, Any]:
    async with http.get(f"{base}{API}/instances/{iid}", params=params) as resp:
        return resp.status, await resp.json(content_type=None)


async def wait_done(
    http: aiohttp.ClientSession, base: str, iid: str, timeout: float = 10.0, **params: str
) -> dict:
    deadline = time.monotonic() + timeout
    body: Any = {}
    while time.monotonic() < deadline:
        _, body = await get_status(http, base, iid, **params)
        if isinstance(body, dict) and body.get("runtimeStatus") in TERMINAL:
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"instance {iid} did not finish: {body}")


async def wait_until(http, base, iid, predicate, timeout: float = 10.0) -> dict:
    deadline = time.monotonic() + timeout
    body: Any = {}
    while time.monotonic() < deadline:
        _, body = await get_status(http, base, iid, showHistory="true")
        if isinstance(body, dict) and predicate(body):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met for {iid}: {body}")


async def eventually(condition: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    """Poll `condition` until it holds (a readiness wait, bounded)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        await asyncio.sleep(0.02)


async def raise_event(http, base, iid, name, value) -> int:
    async with http.post(f"{base}{API}/instances/{iid}/raiseEvent/{name}", json=value) as resp:
        return resp.status


# -- protocol ------------------------------------------------------------------------------------
async def test_retry_inside_task_any_with_other_completion(host, http):
    key = uuid.uuid4().hex
    done = await wait_done(http, host.url, await start(http, host.url, "retry_in_any", key))
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == [f"{key} ok after 2", "Hello other", "Hello after"]


async def test_two_retry_tasks_failing_at_once(host, http):
    key = uuid.uuid4().hex
    done = await wait_done(http, host.url, await start(http, host.url, "two_retries", key))
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == [f"{key}-0 ok after 3", f"{key}-1 ok after 3", "Hello third", "Hello after"]


async def test_sub_orchestration_with_retry_succeeds_on_second_attempt(host, http):
    key = uuid.uuid4().hex
    done = await wait_done(http, host.url, await start(http, host.url, "sub_retry", key))
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == f"{key} ok after 2"


async def test_cancelled_timer_is_dropped(host, http):
    iid = await start(http, host.url, "timers")
    done = await wait_done(http, host.url, iid)
    assert done["output"] == ["short", True], done
    assert host.engine.scheduler.pending() == 0


async def test_task_any_over_events_of_the_same_name(host, http):
    iid = await start(http, host.url, "same_name_any")
    await wait_until(http, host.url, iid, lambda b: b["runtimeStatus"] == "Running")
    assert await raise_event(http, host.url, iid, "E", "one") == 202
    assert await raise_event(http, host.url, iid, "E", "two") == 202
    done = await wait_done(http, host.url, iid)
    assert done["output"] == ["one", "two"], done


async def test_events_raised_before_the_wait(host, http):
    iid = await start(http, host.url, "event_chain", 3)
    for value in ("a", "b", "c"):
        assert await raise_event(http, host.url, iid, "Item", value) == 202
    done = await wait_done(http, host.url, iid)
    assert done["output"] == ["a", "b", "c"]


async def test_continue_as_new_with_pending_timer_and_activity(host, http):
    iid = await start(http, host.url, "can_with_pending")
    done = await wait_done(http, host.url, iid)
    assert done["output"] == 2, done
    # The 30 s timers of the earlier executions are dropped.
    assert host.engine.scheduler.pending() == 0


async def test_custom_status_values(host, http):
    iid = await start(http, host.url, "status_values", [{"a": 1}, "text", [1, 2]])
    done = await wait_done(http, host.url, iid)
    assert done["customStatus"] == [1, 2]


async def test_orchestrator_raising_on_its_first_episode_fails(host, http):
    done = await wait_done(http, host.url, await start(http, host.url, "raise_first"))
    assert done["runtimeStatus"] == "Failed"
    assert "first episode boom" in done["output"]


async def test_non_json_output_fails(host, http):
    done = await wait_done(http, host.url, await start(http, host.url, "not_json"))
    assert done["runtimeStatus"] == "Failed"
    assert "not JSON serializable" in done["output"]


async def test_output_and_history_over_a_mebibyte(host, http):
    size = 1_500_000
    iid = await start(http, host.url, "huge", size)
    done = await wait_done(http, host.url, iid, timeout=20)
    assert done["runtimeStatus"] == "Completed", str(done)[:500]
    assert done["output"]["len"] == size and done["output"]["text"] == "x" * size
    _, full = await get_status(http, host.url, iid, showHistory="true", showHistoryOutput="true")
    assert [e["EventType"] for e in full["historyEvents"]][-1] == "ExecutionCompleted"


async def test_long_history(host, http):
    n = 150
    done = await wait_done(http, host.url, await start(http, host.url, "long_chain", n), timeout=60)
    assert done["output"] == sum(range(n))


# -- sub-orchestrations under fixed ids ------------------------------------------------------------
async def test_named_child_is_started_again_when_the_parent_id_is_reused(host, http):
    """Start parent P (child id 'P-child'), let it complete, start P again: the second run must start
    the child again, not hang because the old child 'already belongs' to P task 0."""
    iid = "p-" + uuid.uuid4().hex
    first = await wait_done(http, host.url, await start(http, host.url, "named_child", {}, iid))
    assert first["output"] == ["Hello run0"]
    await start(http, host.url, "named_child", {"n": 5}, iid)
    second = await wait_done(http, host.url, iid, timeout=5)
    assert second["runtimeStatus"] == "Completed"
    assert second["output"] == ["Hello run5"]


async def test_named_child_is_started_again_after_continue_as_new(host, http):
    iid = "p-" + uuid.uuid4().hex
    done = await wait_done(
        http, host.url, await start(http, host.url, "named_child", {"continue_until": 2}, iid), timeout=5
    )
    assert done["output"] == ["Hello run0", "Hello run1", "Hello run2"]


@pytest.mark.parametrize(
    "child_id", ["a/b", "a#b", "a?b", "x" * 600, "tab\there"], ids=["slash", "hash", "query", "long", "tab"]
)
async def test_sub_orchestration_with_an_invalid_instance_id_fails_instead_of_hanging(host, http, child_id):
    iid = await start(http, host.url, "bad_child_id", child_id)
    done = await wait_done(http, host.url, iid, timeout=5)
    # Either the call fails inside the orchestrator (caught) or the orchestration fails: never a hang.
    assert done["runtimeStatus"] in ("Completed", "Failed")
    if done["runtimeStatus"] == "Completed":
        assert "failed" in done["output"]


# -- storage limits ------------------------------------------------------------------------------
async def test_many_distinct_waits_do_not_wedge_the_instance(host, http):
    """2000 open waits with distinct names: the per-name wait counts are one table property."""
    iid = await start(http, host.url, "many_waits", {"prefix": "approval-" + "k" * 40, "n": 2000})
    done = await wait_done(http, host.url, iid, timeout=8)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == "timed out"


# -- crash safety (SIGKILL the host subprocess, restart, check) ---------------------------------------
def _kill(procs) -> None:
    proc = procs[-1]
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)


async def _entity_state(http, base: str, key: str) -> Any:
    async with http.get(f"{base}{API}/entities/Counter/{key}") as resp:
        return resp.status, await resp.json(content_type=None)


async def _crash_loop(http, host_process, name: str, payload: Any, kills: int, seed: int) -> tuple[str, dict]:
    """Start `name`, SIGKILL the host `kills` times at random moments while it runs, then let it finish."""
    start_host, procs = host_process
    rng = random.Random(seed)
    base = start_host(PROBE_APP)
    iid = await start(http, base, name, payload)
    for _ in range(kills):
        await asyncio.sleep(rng.uniform(0.05, 0.6))
        _kill(procs)
        base = start_host(PROBE_APP)
    return base, await wait_done(http, base, iid, timeout=30)


@pytest.mark.parametrize("seed", [1, 2])
async def test_entity_calls_apply_exactly_once_across_sigkill(http, host_process, seed):
    key = uuid.uuid4().hex
    calls = 25
    base, done = await _crash_loop(http, host_process, "entity_calls", {"key": key, "calls": calls}, 3, seed)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == calls
    assert await _entity_state(http, base, key) == (200, calls)


@pytest.mark.parametrize("seed", [3, 4])
async def test_entity_signals_apply_exactly_once_across_sigkill(http, host_process, seed):
    key = uuid.uuid4().hex
    signals_ = 25
    payload = {"key": key, "calls": 0, "signals": signals_}
    base, done = await _crash_loop(http, host_process, "entity_calls", payload, 3, seed)
    assert done["runtimeStatus"] == "Completed", done
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and await _entity_state(http, base, key + "-s") != (200, signals_):
        await asyncio.sleep(0.05)
    assert await _entity_state(http, base, key + "-s") == (200, signals_)


async def test_fan_out_survives_sigkill(http, host_process):
    base, done = await _crash_loop(http, host_process, "fan_out", {"n": 120, "sleep": 0.02}, 3, 5)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == sum(range(120))


async def test_sub_orchestrations_survive_sigkill(http, host_process):
    base, done = await _crash_loop(http, host_process, "sub_fan_out", 30, 3, 6)
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == [f"Hello {i}" for i in range(30)]


async def test_external_events_survive_sigkill(http, host_process):
    """Every event answered 202 is delivered exactly once, in order, whatever the kills."""
    start_host, procs = host_process
    base = start_host(PROBE_APP)
    n = 30  # with seed 7: kills right after accepted events, twice in a row at the end
    iid = await start(http, base, "event_chain", n)
    sent = 0
    rng = random.Random(7)
    while sent < n:
        try:
            status_ = await raise_event(http, base, iid, "Item", sent)
        except aiohttp.ClientError:
            status_ = None
        if status_ == 202:
            sent += 1
        if rng.random() < 0.1:
            _kill(procs)
            base = start_host(PROBE_APP)
    done = await wait_done(http, base, iid, timeout=8)
    assert done["output"] == list(range(n))


async def test_events_stored_while_the_host_was_down_are_all_delivered(azurite_connstr, hub, http):
    """Three events accepted (persisted) just before a crash, for an instance waiting for them one at a
    time: after the restart the first episode takes one; the other two must not be forgotten."""
    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as first:
        iid = await start(http, first.url, "event_chain", 3)
        await wait_until(http, first.url, iid, lambda b: b["runtimeStatus"] == "Running")
    store = InstanceStore(azurite_connstr, hub)
    await store.open()
    try:
        for value in ("a", "b", "c"):
            now = datetime.now(UTC)
            await store.add_message(iid, h.event(h.EVENT_RAISED, now, Name="Item", Input=json.dumps(value)))
    finally:
        await store.close()
    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as second:
        done = await wait_done(http, second.url, iid, timeout=5)
        assert done["output"] == ["a", "b", "c"]


# -- load ------------------------------------------------------------------------------------------
async def test_fan_out_of_300_activities_leaves_http_responsive(host, http):
    iid = await start(http, host.url, "fan_out", {"n": 300, "sleep": 0.02})
    worst = 0.0
    deadline = time.monotonic() + 30
    body: Any = {}
    while time.monotonic() < deadline:
        began = time.monotonic()
        async with http.get(f"{host.url}/api/ping") as resp:
            assert resp.status == 200
        _, body = await get_status(http, host.url, iid)
        worst = max(worst, time.monotonic() - began)
        if body.get("runtimeStatus") in TERMINAL:
            break
        await asyncio.sleep(0.02)
    assert body["runtimeStatus"] == "Completed" and body["output"] == sum(range(300)), body
    assert worst < 1.0, f"an HTTP round trip took {worst:.2f}s during the fan-out"


# -- the instance API under hostile input -------------------------------------------------------------
async def _call(http, method: str, url: str, **kw) -> tuple[int, str, str]:
    async with http.request(method, url, **kw) as resp:
        return resp.status, resp.headers.get("Content-Type", ""), await resp.text()


@pytest.mark.parametrize(
    "body",
    [json.dumps("[" * 100000), json.dumps("[" * 5000 + "]" * 5000), json.dumps('{"a":' * 5000)],
    ids=["unclosed", "closed", "objects"],
)
async def test_start_with_a_json_string_of_deeply_nested_json_is_a_json_4xx(host, http, body):
    """The client's double encoding: a JSON string whose text is deeply nested JSON."""
    code, ctype, text = await _call(http, "POST", f"{host.url}{API}/orchestrators/echo/deep", data=body)
    assert code < 500 and ctype.startswith("application/json"), (code, text[:200])


async def test_raise_event_with_a_json_string_of_deeply_nested_json_is_a_json_4xx(host, http):
    iid = await start(http, host.url, "waiter")
    url = f"{host.url}{API}/instances/{iid}/raiseEvent/Go"
    code, ctype, text = await _call(http, "POST", url, data=json.dumps("[" * 100000))
    assert code < 500 and ctype.startswith("application/json"), (code, text[:200])
    assert await raise_event(http, host.url, iid, "Go", "fine") == 202
    assert (await wait_done(http, host.url, iid))["output"] == "fine"


@pytest.mark.parametrize(
    "query",
    ["createdTimeFrom=0001-01-01T00:00:00%2B05:00", "createdTimeTo=9999-12-31T23:59:59-05:00"],
)
@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_list_and_purge_with_out_of_range_dates_are_a_json_400(host, http, query, method):
    extra = "" if "From" in query else "createdTimeFrom=2020-01-01T00:00:00Z&"
    code, ctype, text = await _call(http, method, f"{host.url}{API}/instances?{extra}{query}")
    assert code == 400 and ctype.startswith("application/json"), (code, text[:200])


async def test_terminated_history_has_one_completion(host, http):
    iid = await start(http, host.url, "waiter")
    await wait_until(http, host.url, iid, lambda b: b["runtimeStatus"] == "Running")
    code, _, _ = await _call(http, "POST", f"{host.url}{API}/instances/{iid}/terminate?reason=stop")
    assert code == 202
    done = await wait_done(http, host.url, iid, showHistory="true", showHistoryOutput="true")
    assert done["runtimeStatus"] == "Terminated" and done["output"] == "stop"
    ends = [e for e in done["historyEvents"] if e["EventType"] == "ExecutionCompleted"]
    assert len(ends) == 1, done["historyEvents"]
    assert ends[0]["OrchestrationStatus"] == "Terminated"


@pytest.mark.parametrize(
    ("body", "problem"),
    [(b"NaN", "NaN is not JSON"), (b"Infinity", "Infinity is not JSON"), (b"1e999", "out of range")],
)
async def test_inputs_that_are_not_standard_json_are_refused(host, http, body, problem):
    """Python's json accepts NaN, Infinity and 1e999 (inf); no other reader does, so an instance holding
    one would have a status body clients cannot read. The start is refused, and no instance is left."""
    iid = f"n{uuid.uuid4().hex}"
    code, ctype, text = await _call(http, "POST", f"{host.url}{API}/orchestrators/echo/{iid}", data=body)
    assert code == 400 and ctype.startswith("application/json"), (code, text)
    assert problem in json.loads(text)["error"], text
    assert (await get_status(http, host.url, iid))[0] == 404


async def test_orchestrator_signal_is_not_reapplied_when_its_acknowledgement_waits_in_the_inbox(
    azurite_connstr, hub, http, monkeypatch
):
    """The entity acknowledges an orchestration's signal into the instance's inbox before it commits; the
    host can die after that and before an episode records the acknowledgement in the history. The next
    start must count the acknowledgement waiting in the inbox as one: once the entity has unlisted the
    signal's row key, sending it again would apply it twice.
    Fault injection: the acknowledgement is written to the inbox and no episode takes it before the stop."""
    key = uuid.uuid4().hex
    acknowledged: list[str] = []
    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as first:
        assert first.engine is not None and first.dispatcher is not None
        await first.wait_idle()  # start-up resumption done: episodes read the inbox from memory only
        engine = first.engine

        async def ack_written_not_taken(parent: str, execution: str, request: str, payload: str) -> None:
            acknowledged.append(request)  # persisted as `engine.entity_answered` would, no worker woken
            event = h.event(h.EVENT_RAISED, engine.now(), Name=request, Input=payload)
            await engine.store.add_message(parent, event, execution)

        monkeypatch.setattr(first.dispatcher, "respond", ack_written_not_taken)
        iid = await start(http, first.url, "entity_signal_then_wait", key)
        await wait_until(http, first.url, iid, lambda b: len(b.get("historyEvents", [])) >= 3)
        await wait_entity(http, first.url, key, 1)
        for expected in (2, 3):  # later operations: the entity unlists the row keys it deleted
            async with http.post(
                f"{first.url}{API}/entities/Counter/{key}?op=add", data=json.dumps("1")
            ) as r:
                assert r.status == 202
            await wait_entity(http, first.url, key, expected)
        record = await engine.store.read(iid)
        assert record is not None and not orchestration_acks(record.history)  # only in the inbox:
        waiting = await engine.store.messages(iid, record.applied)
        assert [m.event.get("Name") for m in waiting] == acknowledged and len(acknowledged) == 1
    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as second:
        await second.wait_idle()
        assert await raise_event(http, second.url, iid, "Go", "go") == 202
        await wait_done(http, second.url, iid)
        await second.wait_idle()
        assert await _entity_state(http, second.url, key) == (200, 3)


async def wait_entity(http, base: str, key: str, expected: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await _entity_state(http, base, key) == (200, expected):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"Counter/{key} is {await _entity_state(http, base, key)}, expected {expected}")


async def test_orchestrator_signal_is_applied_once_across_a_restart_without_fault_injection(
    azurite_connstr, hub, http
):
    """The same signal, no fault injected: an event already waiting when the signal goes out, the
    acknowledgement recorded by a later episode, then a restart."""
    key = uuid.uuid4().hex
    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as first:
        iid = uuid.uuid4().hex
        start_task = asyncio.create_task(start(http, first.url, "signal_then_two_waits", key, iid))
        while await raise_event(http, first.url, iid, "Go", "one") != 202:
            await asyncio.sleep(0.001)
        await start_task
        await wait_until(
            http, first.url, iid, lambda b: any(e["EventType"] == "EventRaised" for e in b["historyEvents"])
        )
        await wait_entity(http, first.url, key, 1)
        await first.wait_idle()
        for expected in (2, 3):
            async with http.post(
                f"{first.url}{API}/entities/Counter/{key}?op=add", data=json.dumps("1")
            ) as r:
                assert r.status == 202
            await wait_entity(http, first.url, key, expected)
    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as second:
        await second.wait_idle()
        assert await raise_event(http, second.url, iid, "Go2", "two") == 202
        assert (await wait_done(http, second.url, iid))["output"] == ["one", "two"]
        await second.wait_idle()
        assert await _entity_state(http, second.url, key) == (200, 3)


@pytest.mark.parametrize(
    "spec",
    [
        {"interval": 10, "failures": 1, "other_sleep": 0, "more": [0.2]},
        {"interval": 10, "failures": 2, "other_sleep": 0, "more": [0, 0.05, 0.1]},
        {"interval": 200, "failures": 1, "other_sleep": 0, "more": [0, 0]},
        {"interval": 10, "failures": 5, "other_sleep": 0.05, "more": [0.01]},
        {"interval": 10, "failures": 0, "other_sleep": 0, "more": [0]},
    ],
)
async def test_retry_pending_while_the_orchestrator_moves_on(host, http, spec):
    key = uuid.uuid4().hex
    iid = await start(http, host.url, "retry_then_more", {**spec, "key": key})
    done = await wait_done(http, host.url, iid)
    assert done["runtimeStatus"] == "Completed", done
    expected = f"{key} ok after {spec['failures'] + 1}" if spec["failures"] < 3 else None
    if expected:
        assert done["output"][0] == expected
    else:
        assert done["output"][0].startswith("failed: Activity function 'flaky' failed")
    assert done["output"][1:] == [[2] * len(spec["more"]), "Hello last"]


async def test_concurrent_starts_with_the_same_id(host, http):
    iid = uuid.uuid4().hex
    url = f"{host.url}{API}/orchestrators/waiter/{iid}"

    async def one() -> int:
        async with http.post(url, json="x") as resp:
            await resp.read()
            return resp.status

    codes = await asyncio.gather(*[one() for _ in range(10)])
    assert sorted(codes) == [202] + [409] * 9
    assert await raise_event(http, host.url, iid, "Go", "ok") == 202
    assert (await wait_done(http, host.url, iid))["output"] == "ok"


async def test_purge_of_a_running_instance_then_reuse_of_its_id(host, http):
    iid = await start(http, host.url, "fan_out", {"n": 30, "sleep": 0.05})
    await wait_until(http, host.url, iid, lambda b: b["runtimeStatus"] == "Running")
    async with http.delete(f"{host.url}{API}/instances/{iid}") as resp:
        assert resp.status == 200 and await resp.json() == {"instancesDeleted": 1}
    assert (await get_status(http, host.url, iid))[0] == 404
    await start(http, host.url, "fan_out", {"n": 5}, iid)
    done = await wait_done(http, host.url, iid)
    assert done["output"] == sum(range(5))
    # the purged execution's activities finish (or were stopped) and whatever they deliver is handled
    assert host.engine is not None
    await eventually(lambda: not any(key[0] == iid for key in host.engine._running), "activities to end")
    await host.wait_idle()
    assert (await get_status(http, host.url, iid))[1]["output"] == sum(range(5))


async def test_events_accepted_before_start_up_resumption_do_not_overtake_stored_ones(
    azurite_connstr, hub, http, monkeypatch
):
    """The port serves before `engine.resume()` has run (it reads every active instance one by one, so
    it takes a while with many). An event raised meanwhile runs the worker on the in-memory inbox only,
    ahead of an older event already stored."""
    from harness.host.orchestrations.engine import OrchestrationEngine

    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as first:
        iid = await start(http, first.url, "event_chain", 2)
        await wait_until(http, first.url, iid, lambda b: b["runtimeStatus"] == "Running")
    store = InstanceStore(azurite_connstr, hub)
    await store.open()
    try:  # accepted just before a crash
        await store.add_message(iid, h.event(h.EVENT_RAISED, datetime.now(UTC), Name="Item", Input='"a"'))
    finally:
        await store.close()
    real_resume = OrchestrationEngine.resume

    async def slow_resume(self):  # as with a few hundred instances to read
        await asyncio.sleep(0.5)
        return await real_resume(self)

    monkeypatch.setattr(OrchestrationEngine, "resume", slow_resume)
    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as second:
        assert await raise_event(http, second.url, iid, "Item", "b") == 202
        done = await wait_done(http, second.url, iid, timeout=5)
        assert done["output"] == ["a", "b"]


async def test_cancelled_timer_is_not_rearmed_after_a_restart(azurite_connstr, hub, http):
    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as first:
        iid = await start(http, first.url, "cancel_then_wait")
        await wait_until(
            http, first.url, iid, lambda b: any(e["EventType"] == "TimerFired" for e in b["historyEvents"])
        )
        await first.wait_idle()
        assert first.engine is not None and first.engine.scheduler.pending() == 0
    async with LocalHost(PROBE_APP, port=0, storage=azurite_connstr, hub_name=hub) as second:
        await second.wait_idle()
        assert second.engine is not None and second.engine.scheduler.pending() == 0
        assert await raise_event(http, second.url, iid, "Go", 1) == 202
        assert (await wait_done(http, second.url, iid))["output"] == 1


async def test_sync_activities_cannot_starve_orchestrators_and_http(azurite_connstr, hub, http, tmp_path):
    """With maxConcurrentActivityFunctions above the host's 32 worker threads, sync activities take every
    thread, and orchestrator episodes, entity operations and sync HTTP functions (same pool) wait."""
    app = tmp_path / "app"
    shutil.copytree(PROBE_APP, app, ignore=shutil.ignore_patterns("__pycache__"))
    config = json.loads((app / "host.json").read_text())
    config["extensions"]["durableTask"]["maxConcurrentActivityFunctions"] = 64
    (app / "host.json").write_text(json.dumps(config))
    async with LocalHost(app, port=0, storage=azurite_connstr, hub_name=hub) as host:
        busy = await start(http, host.url, "fan_out", {"n": 40, "sleep": 3})
        await wait_until(http, host.url, busy, lambda b: b["runtimeStatus"] == "Running")
        assert host.engine is not None
        pool = host.engine._activity_threads
        await eventually(lambda: pool.counted >= 40, "all 40 activities to run in a thread")
        began = time.monotonic()
        quick = await start(http, host.url, "waiter")
        await wait_until(http, host.url, quick, lambda b: b["runtimeStatus"] == "Running")
        episode = time.monotonic() - began
        assert await raise_event(http, host.url, quick, "Go", 1) == 202
        await wait_done(http, host.url, quick)
        began = time.monotonic()
        async with http.get(f"{host.url}/api/ping") as resp:
            assert resp.status == 200
        ping = time.monotonic() - began
        assert ping < 1.0 and episode < 1.0, f"first episode {episode:.2f}s, ping {ping:.2f}s"


@pytest.mark.parametrize("named", [False, True])
@pytest.mark.parametrize("round_", range(3))
async def test_sub_orchestration_retry_with_a_short_interval(host, http, named, round_):
    """Each attempt reuses the child id; the parent hears of the failure before the child's final
    commit, so a quick retry can find the old child still 'Running'."""
    key = uuid.uuid4().hex
    spec = {"key": key, "child_id": f"c-{key}" if named else None}
    done = await wait_done(http, host.url, await start(http, host.url, "sub_retry_fast", spec))
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == f"{key} ok after 3"


async def test_listing_pages_with_continuation_tokens_and_prefix(host, http):
    prefix = "pg-" + uuid.uuid4().hex[:6] + "-"
    ids = [f"{prefix}{i:02d}" for i in range(7)]
    for iid in ids:
        await start(http, host.url, "echo", iid, iid)
    await start(http, host.url, "echo", "other", prefix[:-1] + "x")  # sorts after the prefix range
    seen: list[str] = []
    token = None
    for _ in range(10):
        headers = {"x-ms-continuation-token": token} if token else {}
        async with http.get(
            f"{host.url}{API}/instances/", params={"instanceIdPrefix": prefix, "top": "3"}, headers=headers
        ) as resp:
            assert resp.status == 200
            seen += [s["instanceId"] for s in await resp.json()]
            token = resp.headers.get("x-ms-continuation-token")
        if not token:
            break
    assert seen == ids
