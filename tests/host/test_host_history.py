"""The append-only instance history against real Azurite (issue 21, item 4.1): a step writes what it
appends, not the whole history; rows past the committed length are ignored; a continue-as-new drops
the old execution's rows; and instances stored in the layout before (the history as one text of the
instance row) still load and run on."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from azure.data.tables.aio import TableClient

from harness.host import LocalHost
from harness.host.orchestrations import store as store_module
from harness.host.orchestrations.store import HISTORY_PREFIX, INSTANCE_ROW, InstanceStore

from .test_host_orchestrations import API, ORCH_APP, start, status, wait_done


@pytest.fixture
async def host(azurite_connstr: str, hub: str) -> AsyncIterator[LocalHost]:
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


@pytest.fixture
async def table(azurite_connstr: str, hub: str) -> AsyncIterator[TableClient]:
    """The hub's instance table, as another process would see it."""
    store = InstanceStore(azurite_connstr, hub)
    async with TableClient.from_connection_string(azurite_connstr, store.table_name) as client:
        yield client
    await store.close()


def _size(value: Any) -> int:
    return len(json.dumps(value, default=str))


async def _rows(table: TableClient, iid: str) -> dict[str, dict[str, Any]]:
    return {
        row["RowKey"]: row
        async for row in table.query_entities("PartitionKey eq @pk", parameters={"pk": iid})
    }


async def _until(check: Callable[[], Awaitable[bool]], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.05)


async def test_a_step_writes_what_it_appends_whatever_the_length_of_the_history(
    host: LocalHost, http, monkeypatch: pytest.MonkeyPatch
):
    assert host.instances is not None
    table = host.instances._table  # private: the size of each commit is what this test is about
    written: list[int] = []
    for method in ("upsert_entity", "update_entity"):  # the history row, then the instance row
        real = getattr(table, method)

        def counting(real: Any = real) -> Any:
            async def call(first: Any, *args: Any, **kwargs: Any) -> Any:
                written.append(_size(first))
                return await real(first, *args, **kwargs)

            return call

        monkeypatch.setattr(table, method, counting())
    steps = 60
    done = await wait_done(http, await start(http, host, "hello_sequence", [f"c{i}" for i in range(steps)]))
    assert done["runtimeStatus"] == "Completed"
    assert len(written) >= steps
    early, late = written[2:12], written[-12:-2]  # the last commit (two writes) also writes the output
    # Before, every commit rewrote the whole history: step 60 wrote ~15 times what step 5 did.
    assert max(late) < 1.5 * max(early), (early, late)


async def test_rows_past_the_committed_length_are_ignored(host: LocalHost, http, table, azurite_connstr, hub):
    links = await start(http, host, "hello_sequence", ["A", "B"])
    done = await wait_done(http, links, showHistory="true")
    rows = await _rows(table, links["id"])
    instance = rows[INSTANCE_ROW]
    assert "history" not in instance and instance["historyLength"] > 0
    # What a write that never committed would leave: a history row past the committed length.
    stray = f"{HISTORY_PREFIX}{instance['executionId']}-{instance['historyLength']:010d}"
    junk = [{"EventType": 4, "EventId": -1, "Timestamp": "2000-01-01T00:00:00Z", "Name": "junk"}]
    await table.upsert_entity({"PartitionKey": links["id"], "RowKey": stray, "events": json.dumps(junk)})
    other = InstanceStore(azurite_connstr, hub)  # no cache: reads storage
    try:
        record = await other.read(links["id"])
    finally:
        await other.close()
    assert record is not None
    assert len(record.history) == len(host.instances.records.get(links["id"])[1].history)  # type: ignore[union-attr]
    assert all(e.get("Name") != "junk" for e in record.history)
    assert done["historyEvents"][-1]["EventType"] == "ExecutionCompleted"


async def test_continue_as_new_leaves_only_the_current_executions_history(
    host: LocalHost, http, table, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(store_module, "TAIL_CHARS", 0)  # every commit's entries in a history row
    links = await start(http, host, "counting")
    iid = links["id"]
    for item in ("a", "b", "c"):
        async with http.post(f"{host.url}{API}/instances/{iid}/raiseEvent/Item", json=item) as resp:
            assert resp.status == 202
    done = await wait_done(http, links)
    assert done["output"] == {"n": 3, "seen": ["a", "b", "c"]}

    async def only_current() -> bool:
        rows = await _rows(table, iid)
        current = rows[INSTANCE_ROW]["executionId"]
        history = [k for k in rows if k.startswith(HISTORY_PREFIX)]
        return bool(history) and all(k.startswith(f"{HISTORY_PREFIX}{current}-") for k in history)

    await _until(only_current, "the history rows of the executions before were not deleted")


async def test_an_instance_stored_in_the_layout_before_loads_and_runs_on(
    azurite_connstr, hub, http, table, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(store_module, "TAIL_CHARS", 0)  # the history in rows, which the test folds back
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as first:
        links = await start(http, first, "two_events")
        iid = links["id"]
        async with http.post(f"{first.url}{API}/instances/{iid}/raiseEvent/Step", json="one") as resp:
            assert resp.status == 202

        async def took_one() -> bool:
            _, body = await status(http, links["statusQueryGetUri"], showHistory="true")
            return any(e["EventType"] == "EventRaised" for e in body.get("historyEvents") or [])

        await _until(took_one, "the first event was not applied")
    # Rewrite the stored instance as the layout before kept it: the whole history in the row's text.
    rows = await _rows(table, iid)
    instance = rows.pop(INSTANCE_ROW)
    history: list[dict[str, Any]] = []
    for key in sorted(rows):
        if key.startswith(HISTORY_PREFIX):
            history.extend(json.loads(rows[key]["events"]))
            await table.delete_entity(iid, key)
    legacy = {k: v for k, v in instance.items() if k != "historyLength"}
    legacy["history"] = json.dumps(history)
    await table.upsert_entity(legacy, mode="replace")

    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as second:
        _, body = await status(http, f"{second.url}{API}/instances/{iid}", showHistory="true")
        assert [e["EventType"] for e in body["historyEvents"]] == ["ExecutionStarted", "EventRaised"]
        async with http.post(f"{second.url}{API}/instances/{iid}/raiseEvent/Step", json="two") as resp:
            assert resp.status == 202
        done = await wait_done(
            http, {"statusQueryGetUri": f"{second.url}{API}/instances/{iid}"}, showHistory="true"
        )
    assert done["output"] == ["one", "two"]
    kinds = [e["EventType"] for e in done["historyEvents"]]
    assert kinds == ["ExecutionStarted", "EventRaised", "EventRaised", "ExecutionCompleted"]
    migrated = (await _rows(table, iid))[INSTANCE_ROW]
    assert "history" not in migrated and migrated["historyLength"] >= len(history)
