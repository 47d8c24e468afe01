"""The host at scale against real Azurite (issue 21, item 4): bounded inbox reads, per-key state
dropped when a key goes idle, purge by filter in parallel, and waits woken by notification."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from azure.data.tables.aio import TableClient

from harness.host import LocalHost
from harness.host.orchestrations.store import INBOX_PAGE

from .test_host_orchestrations import API, ORCH_APP, start, wait_done, wait_for


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
