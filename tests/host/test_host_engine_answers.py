"""The orchestration engine when storage answers get lost, when an instance's orchestrator is gone, and
when many events wait for one instance (issue 20, items 4 and 7).

Faults are injected at the storage clients (the write lands, its answer does not), as
`test_host_durability.py` does for the entity store; everything else is the real host, Azurite and SDK.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.core.exceptions import ServiceResponseError

from harness.host import LocalHost
from harness.host.orchestrations import history as h

from .test_host_orchestrations import API, ORCH_APP, start, wait_done, wait_for

LOST = "connection reset before the answer"


@pytest.fixture
async def host(azurite_connstr: str, hub: str) -> AsyncIterator[LocalHost]:
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


def lose_one_answer(monkeypatch: pytest.MonkeyPatch, client: Any, method: str, when: Any) -> list[dict]:
    """Make the first call of `client.method` whose entity matches `when` land, then fail as if its
    answer were lost (a timeout or a reset: the caller cannot tell whether it landed)."""
    real = getattr(client, method)
    lost: list[dict] = []

    async def land_then_lose(entity: dict, *args: Any, **kwargs: Any) -> Any:
        result = await real(entity, *args, **kwargs)
        if not lost and when(entity):
            lost.append(dict(entity))
            raise ServiceResponseError(LOST)
        return result

    monkeypatch.setattr(client, method, land_then_lose)
    return lost


async def test_an_instance_commit_whose_answer_was_lost_keeps_its_blobs_and_runs_on(
    host: LocalHost, http, monkeypatch: pytest.MonkeyPatch
):
    """Item 4a: the lost answer may hide a landed write, so the blobs it names must stay, and the work
    the committed episode scheduled must still start."""
    assert host.instances is not None
    big = "x" * 200_000  # too long for a row: the input goes to a blob on every write
    lost = lose_one_answer(
        monkeypatch,
        host.instances._table,
        "update_entity",
        lambda entity: entity.get("inputBlob") and entity.get("status") == "Running",
    )
    links = await start(http, host, "hello_sequence", [big])
    done = await wait_done(http, links, timeout=20, showInput="false")  # a readable failure
    assert lost, "no instance commit was hit"
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == [f"Hello {big}"]


async def test_a_child_start_whose_answer_was_lost_still_runs_the_child(
    host: LocalHost, http, monkeypatch: pytest.MonkeyPatch
):
    """Item 4b: the retried start finds the child's row written and must still wake the child."""
    assert host.instances is not None
    child_id = "child-" + uuid.uuid4().hex
    lost = lose_one_answer(
        monkeypatch, host.instances._table, "create_entity", lambda entity: entity["PartitionKey"] == child_id
    )
    done = await wait_done(http, await start(http, host, "parent", {"child_id": child_id}), timeout=20)
    assert lost, "the child's start was not hit"
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"]["named"] == ["Hello C"]


async def test_an_entity_call_whose_answer_was_lost_still_reaches_the_entity(
    host: LocalHost, http, monkeypatch: pytest.MonkeyPatch
):
    """Item 4b: the retried send finds the signal row written and must still wake the entity."""
    assert host.store is not None
    key = uuid.uuid4().hex
    lost = lose_one_answer(
        monkeypatch, host.store._table, "create_entity", lambda entity: entity.get("op") == "add"
    )
    done = await wait_done(http, await start(http, host, "entities", key), timeout=20)
    assert lost, "no entity operation was hit"
    assert done["runtimeStatus"] == "Completed", done
    assert done["output"] == {"after_add": 15, "current": 15, "error": "counter refuses"}


async def test_an_entity_answer_to_a_terminated_execution_does_not_reach_the_next_one(host: LocalHost, http):
    """Item 4c: the answer carries the execution that asked, so the next execution drops it."""
    assert host.engine is not None and host.instances is not None and host.store is not None
    key = uuid.uuid4().hex
    iid = "late-" + key
    entity = f"@counter@{key}"
    await host.wait_idle()  # start-up resumption done (it would wait for the entity's lock too)
    async with host.engine.entities.lock(entity):  # the entity answers only once the lock is released
        links = await start(http, host, "call_then_wait", key, id=iid)
        for _ in range(200):  # bounded poll: the call's signal row is written after the first episode
            if await host.store.pending(entity):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("the entity call was never sent")
        async with http.post(links["terminatePostUri"].replace("{text}", "stop")) as resp:
            assert resp.status == 202
        await wait_done(http, links)
        async with http.post(links["restartPostUri"], params={"restartWithNewInstanceId": "false"}) as resp:
            assert resp.status == 202, await resp.text()
    # The entity answers both calls (the old one first); the new execution takes its own answer.
    for _ in range(200):
        record = await host.instances.read(iid)
        if record is not None and any(e["EventType"] == h.EVENT_RAISED for e in record.history):
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the new execution never got its answer")
    await host.wait_idle()
    record = await host.instances.read(iid)
    assert record is not None and record.status == "Running"
    assert await host.instances.messages(iid, record.applied) == []  # the late answer was dropped
    async with http.post(links["sendEventPostUri"].replace("{eventName}", "Go"), json="go") as resp:
        assert resp.status == 202
    done = await wait_done(http, links)
    assert done["output"] == {"value": 2, "go": "go"}


async def test_restarting_an_instance_whose_orchestrator_is_gone_is_a_404_naming_it(
    host: LocalHost, http, monkeypatch: pytest.MonkeyPatch
):
    """Item 4d."""
    assert host.engine is not None
    done = await wait_done(http, await start(http, host, "plain", 1))
    monkeypatch.delitem(host.engine.orchestrators, "plain")  # the app no longer defines it
    async with http.post(f"{host.url}{API}/instances/{done['instanceId']}/restart") as resp:
        assert resp.status == 404
        body = await resp.json()
    assert "plain" in body["error"]


async def test_events_waiting_in_the_inbox_are_taken_in_a_few_episodes_in_order(host: LocalHost, http):
    """Item 7: events whose waits open one after the other are handed over in one episode each batch,
    not one episode per event; every event is taken once, in the order raised."""
    assert host.instances is not None
    count = 250
    links = await start(http, host, "event_loop", count)
    await wait_for(http, links, lambda s: s["runtimeStatus"] == "Running")
    async with http.post(links["suspendPostUri"].replace("{text}", "hold")) as resp:
        assert resp.status == 202  # the events pile up in the inbox meanwhile
    url = links["sendEventPostUri"].replace("{eventName}", "Tick")
    for value in range(count):
        async with http.post(url, json=value) as resp:
            assert resp.status == 202
    async with http.post(links["resumePostUri"].replace("{text}", "go")) as resp:
        assert resp.status == 202
    done = await wait_done(http, links, timeout=30)
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == list(range(count))
    record = await host.instances.read(links["id"])
    assert record is not None
    episodes = sum(1 for e in record.history if e["EventType"] == h.ORCHESTRATOR_STARTED)
    assert episodes <= 10, f"{count} events took {episodes} episodes"
    raised = [json.loads(e["Input"]) for e in record.history if e["EventType"] == h.EVENT_RAISED]
    assert raised == list(range(count))  # each event in the history once, in order
