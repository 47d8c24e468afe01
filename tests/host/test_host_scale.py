"""The host at scale against real Azurite (issue 21, item 4): bounded inbox reads, per-key state
dropped when a key goes idle, purge by filter in parallel, and waits woken by notification."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.data.tables.aio import TableClient

from harness.host import LocalHost
from harness.host.orchestrations.store import INBOX_PAGE
from harness.host.workers import KeyedLocks

from .helpers import signal, wait_state
from .test_host_orchestrations import API, ORCH_APP, start, wait_done, wait_for


@pytest.fixture
async def host(azurite_connstr: str, hub: str) -> AsyncIterator[LocalHost]:
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


def _links(host: LocalHost, iid: str) -> dict[str, str]:
    """The check-status links of `iid` on `host` (another host than the one that started it)."""
    base = f"{host.url}{API}/instances/{iid}"
    return {"id": iid, "statusQueryGetUri": base, "resumePostUri": f"{base}/resume?reason={{text}}"}


def count_inbox_reads(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """Count the rows each query of an instance inbox yields (one counter per query)."""
    real = TableClient.query_entities
    reads: list[list[int]] = []

    def counting(self: TableClient, query_filter: str, *args: Any, **kwargs: Any) -> Any:
        rows = real(self, query_filter, *args, **kwargs)
        parameters = kwargs.get("parameters") or {}
        if "pk" not in parameters or parameters.get("hi") != "msg.":  # not one instance's inbox
            return rows
        counter = [0]
        reads.append(counter)

        async def counted() -> AsyncIterator[Any]:
            async for row in rows:
                counter[0] += 1
                yield row

        return counted()

    monkeypatch.setattr(TableClient, "query_entities", counting)
    return reads


async def test_a_long_inbox_is_read_a_page_at_a_time_and_every_event_taken_in_order(
    azurite_connstr: str, hub: str, http, monkeypatch: pytest.MonkeyPatch
):
    count = 2 * INBOX_PAGE + 50
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as first:
        links = await start(http, first, "event_loop", count)
        await wait_for(http, links, lambda s: s["runtimeStatus"] == "Running")
        async with http.post(links["suspendPostUri"].replace("{text}", "hold")) as resp:
            assert resp.status == 202
        await wait_for(http, links, lambda s: s["runtimeStatus"] == "Suspended")
        url = links["sendEventPostUri"].replace("{eventName}", "Tick")
        for value in range(count):
            async with http.post(url, json=value) as resp:
                assert resp.status == 202
    # A new host knows the inbox only from storage.
    reads = count_inbox_reads(monkeypatch)
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as second:
        moved = _links(second, links["id"])
        async with http.post(moved["resumePostUri"].replace("{text}", "go")) as resp:
            assert resp.status == 202
        done = await wait_done(http, moved, timeout=60)
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == list(range(count))
    sizes = [counter[0] for counter in reads]
    assert sizes and max(sizes) <= INBOX_PAGE, sizes
    assert sum(sizes) >= count


async def test_a_keys_lock_is_kept_while_held_or_awaited_and_forgotten_after():
    locks = KeyedLocks()
    inside: list[str] = []
    release = asyncio.Event()

    async def hold() -> None:
        async with locks.hold("k"):
            inside.append("in")
            await release.wait()
            inside.append("out")

    first = asyncio.create_task(hold())
    await asyncio.sleep(0)
    waiters = [asyncio.create_task(hold()) for _ in range(3)]
    await asyncio.sleep(0)
    assert inside == ["in"] and len(locks) == 1  # one lock for the key, three waiting on it
    waiters[0].cancel()  # a waiter given up on still leaves the lock to the others
    release.set()
    await asyncio.gather(first, *waiters, return_exceptions=True)
    assert inside == ["in", "out", "in", "out", "in", "out"]  # one at a time
    assert len(locks) == 0


async def test_per_key_state_shrinks_back_once_many_short_lived_keys_are_idle(host: LocalHost, http):
    assert host.engine is not None and host.dispatcher is not None
    await host.wait_idle()
    links = await asyncio.gather(*(start(http, host, "hello_sequence", [str(i)]) for i in range(40)))
    signals = (signal(http, host.url, "Counter", f"k{i}", "add", i) for i in range(120))
    statuses = await asyncio.gather(*signals)
    assert set(statuses) == {202}
    for done in await asyncio.gather(*(wait_done(http, link) for link in links)):
        assert done["runtimeStatus"] == "Completed"
    for i in range(0, 120, 17):
        await wait_state(http, host.url, "Counter", f"k{i}", i)
    await host.wait_idle()
    assert set(host.engine.held_keys().values()) == {0}, host.engine.held_keys()
    assert set(host.dispatcher.held_keys().values()) == {0}, host.dispatcher.held_keys()


async def test_purge_by_filter_deletes_exactly_the_matching_instances_and_counts_them(
    host: LocalHost, http, azurite_connstr: str
):
    assert host.instances is not None
    purge_url = f"{host.url}{API}/instances"

    async def completed(count: int) -> list[str]:
        links = await asyncio.gather(*(start(http, host, "hello_sequence", ["x"]) for _ in range(count)))
        for done in await asyncio.gather(*(wait_done(http, link) for link in links)):
            assert done["runtimeStatus"] == "Completed"
        return [link["id"] for link in links]

    older = await completed(15)
    since = host.clock.now()
    newer = await completed(25)
    running = [await start(http, host, "two_events") for _ in range(3)]
    for link in running:
        await wait_for(http, link, lambda s: s["runtimeStatus"] == "Running")

    async with http.delete(purge_url, params={"createdTimeFrom": since.isoformat()}) as resp:
        assert resp.status == 200, await resp.text()
        assert await resp.json() == {"instancesDeleted": len(newer)}  # finished ones only, by default
    for iid in [*older, *newer, *(link["id"] for link in running)]:
        async with http.get(f"{purge_url}/{iid}") as resp:
            assert (resp.status == 404) == (iid in newer), (iid, resp.status)  # 200 or 202 when kept
    async with TableClient.from_connection_string(azurite_connstr, host.instances.table_name) as table:
        for iid in newer:  # every row of a purged instance is gone, not only its instance row
            rows = [r async for r in table.query_entities("PartitionKey eq @pk", parameters={"pk": iid})]
            assert rows == [], iid

    params = {"createdTimeFrom": since.isoformat(), "runtimeStatus": "Running"}
    async with http.delete(purge_url, params=params) as resp:
        assert await resp.json() == {"instancesDeleted": len(running)}  # running ones are stopped first
    async with http.delete(purge_url, params=params) as resp:
        assert resp.status == 404  # nothing matches any more


async def test_a_start_with_a_timeout_answers_when_the_instance_ends_woken_by_its_commit(
    host: LocalHost, http
):
    assert host.instances is not None
    url = f"{host.url}{API}/orchestrators/hello_sequence"
    began = time.monotonic()
    # The fallback look at storage comes every 30 s only: an answer in seconds is the commit's wake-up.
    async with http.post(url, params={"timeout": "20", "pollingInterval": "30"}, json=["A", "B"]) as resp:
        assert resp.status == 200, await resp.text()
        assert await resp.json() == ["Hello A", "Hello B"]
    assert time.monotonic() - began < 10
    assert len(host.instances.changes) == 0  # nothing kept for a key nobody waits on


async def test_a_start_with_a_timeout_answers_202_failed_500_and_bad_values_400(host: LocalHost, http):
    base = f"{host.url}{API}/orchestrators"
    async with http.post(f"{base}/two_events", params={"timeout": "0.2"}) as resp:
        assert resp.status == 202  # still waiting for its events: the check-status response
        assert (await resp.json())["statusQueryGetUri"]
    async with http.post(f"{base}/failing", params={"timeout": "20"}, json={"message": "boom"}) as resp:
        assert resp.status == 500
        assert (await resp.json())["runtimeStatus"] == "Failed"
    for params in (
        {"timeout": "soon"},
        {"timeout": "-1"},
        {"timeout": "nan"},
        {"timeout": "1", "pollingInterval": "x"},
    ):
        async with http.post(f"{base}/two_events", params=params) as resp:
            assert resp.status == 400, params
            assert "must be a number of seconds" in (await resp.json())["error"]
