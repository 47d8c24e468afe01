"""Entities over real HTTP against a real Azurite: the Durable HTTP API and the SDK client through the app."""

import asyncio
import json

import aiohttp
import pytest

from harness.host import LocalHost
from harness.host.entities.store import instance_id
from harness.host.storage.tables import INLINE_LIMIT, MAX_PARTS, PART_CHARS

from .helpers import ENTITY_API, read_state, sdk_body, signal, wait_state


async def test_counter_round_trip_through_the_sdk_client(host: LocalHost, http: aiohttp.ClientSession):
    async with http.post(f"{host.url}/api/counters/c1/add", json=5) as resp:
        assert resp.status == 202
    async with http.post(f"{host.url}/api/counters/c1/add", json=7) as resp:
        assert resp.status == 202
    await host.wait_idle()
    async with http.get(f"{host.url}/api/counters/c1") as resp:
        assert resp.status == 200
        assert await resp.json() == {"value": 12}
    async with http.get(f"{host.url}/api/counters/nobody") as resp:
        assert resp.status == 404


async def test_concurrent_signals_to_one_entity_apply_exactly_once(
    host: LocalHost, http: aiohttp.ClientSession
):
    calls = [signal(http, host.url, "Counter", "many", "add", 1) for _ in range(100)]
    statuses = await asyncio.gather(*calls)
    assert statuses == [202] * 100
    await wait_state(http, host.url, "counter", "many", 100)
    await host.wait_idle()
    assert await read_state(http, host.url, "counter", "many") == (200, 100)


async def test_sequential_ops_keep_arrival_order(host: LocalHost, http: aiohttp.ClientSession):
    for op, value in [("add", 3), ("reset", None), ("add", 2), ("set", 10), ("add", 1)]:
        assert await signal(http, host.url, "counter", "seq", op, value) == 202
    await wait_state(http, host.url, "counter", "seq", 11)


async def test_entity_names_are_case_insensitive(host: LocalHost, http: aiohttp.ClientSession):
    assert await signal(http, host.url, "COUNTER", "ci", "add", 1) == 202
    assert await signal(http, host.url, "Counter", "ci", "add", 1) == 202
    await wait_state(http, host.url, "cOuNtEr", "ci", 2)
    # keys are case-sensitive
    await host.wait_idle()
    assert (await read_state(http, host.url, "counter", "CI"))[0] == 404


async def test_listing_with_top_and_continuation(host: LocalHost, http: aiohttp.ClientSession):
    for i in range(5):
        assert await signal(http, host.url, "counter", f"list-{i}", "set", i) == 202
    await host.wait_idle()
    seen: list[dict] = []
    token = None
    pages = 0
    while True:
        headers = {"x-ms-continuation-token": token} if token else {}
        async with http.get(
            f"{host.url}{ENTITY_API}/Counter", params={"fetchState": "true", "top": "2"}, headers=headers
        ) as resp:
            assert resp.status == 200
            page = await resp.json()
            token = resp.headers.get("x-ms-continuation-token")
        pages += 1
        assert len(page) <= 2
        seen.extend(page)
        if not token:
            break
    assert pages == 3
    assert [(e["entityId"], e["state"]) for e in seen] == [
        ({"name": "counter", "key": f"list-{i}"}, i) for i in range(5)
    ]
    assert all(e["lastOperationTime"].endswith("Z") for e in seen)
    async with http.get(f"{host.url}{ENTITY_API}/counter", params={"fetchState": "false"}) as resp:
        items = await resp.json()
        assert len(items) == 5 and all("state" not in e for e in items)
        assert "x-ms-continuation-token" not in resp.headers


async def test_delete_purges_state(host: LocalHost, http: aiohttp.ClientSession):
    assert await signal(http, host.url, "counter", "gone", "add", 4) == 202
    await wait_state(http, host.url, "counter", "gone", 4)
    async with http.delete(f"{host.url}{ENTITY_API}/Counter/gone") as resp:
        assert resp.status == 204
    assert (await read_state(http, host.url, "counter", "gone"))[0] == 404
    async with http.delete(f"{host.url}{ENTITY_API}/counter/gone") as resp:
        assert resp.status == 204  # idempotent
    async with http.get(f"{host.url}{ENTITY_API}/counter") as resp:
        assert await resp.json() == []


async def test_destruct_on_exit_deletes_the_entity(host: LocalHost, http: aiohttp.ClientSession):
    assert await signal(http, host.url, "counter", "d", "add", 1) == 202
    await wait_state(http, host.url, "counter", "d", 1)
    assert await signal(http, host.url, "counter", "d", "delete") == 202
    await host.wait_idle()
    assert (await read_state(http, host.url, "counter", "d"))[0] == 404


async def test_failing_operation_does_not_block_the_entity(host: LocalHost, http: aiohttp.ClientSession):
    assert await signal(http, host.url, "counter", "err", "explode") == 202
    assert await signal(http, host.url, "counter", "err", "add", 2) == 202
    await wait_state(http, host.url, "counter", "err", 2)


@pytest.mark.parametrize(("size", "in_blob"), [(100 * 1024, False), (PART_CHARS * MAX_PARTS + 1, True)])
async def test_large_state_round_trips_split_over_the_row_or_through_a_blob(
    host: LocalHost, http: aiohttp.ClientSession, size: int, in_blob: bool
):
    key = f"big{size}"
    big = {"text": "x" * size, "n": 1}
    assert await signal(http, host.url, "counter", key, "set", big) == 202
    await wait_state(http, host.url, "counter", key, big)
    assert host.store is not None
    host.store.states.fail()  # read what storage holds, not the commit's cached copy
    record = await host.store.read(instance_id("counter", key))
    assert record is not None and (record.state_blob is not None) == in_blob
    assert json.loads(record.state or "") == big
    assert await signal(http, host.url, "counter", key, "set", 3) == 202
    await wait_state(http, host.url, "counter", key, 3)
    host.store.states.fail()
    record = await host.store.read(instance_id("counter", key))
    assert record is not None and record.state_blob is None and record.state == "3"
    assert INLINE_LIMIT < 100 * 1024


async def test_404s_are_json(host: LocalHost, http: aiohttp.ClientSession):
    for method, path in [
        ("POST", f"{ENTITY_API}/nosuch/k?op=add"),
        ("GET", f"{ENTITY_API}/nosuch/k"),
        ("GET", f"{ENTITY_API}/counter/never-signalled"),
        ("GET", f"{ENTITY_API}/nosuch"),
        ("DELETE", f"{ENTITY_API}/nosuch/k"),
        ("GET", "/api/no/such/route"),
        ("GET", "/nothing-here"),
    ]:
        async with http.request(method, host.url + path) as resp:
            assert resp.status == 404, path
            assert "error" in await resp.json(), path
    async with http.post(f"{host.url}/runtime/webhooks/durabletask/orchestrators/x") as resp:
        assert resp.status == 404 and "no orchestrator function named 'x'" in (await resp.json())["error"]


async def test_bad_inputs_are_4xx_json(host: LocalHost, http: aiohttp.ClientSession):
    base = f"{host.url}{ENTITY_API}/counter"
    cases = [
        ("POST", f"{base}/k", b'"1"', 400),  # missing op
        ("POST", f"{base}/k?op=", b"", 400),
        ("POST", f"{base}/k?op=add", b"{not json", 400),
        ("POST", f"{base}/k?op=add", b'"\xff\xfe"', 400),  # invalid UTF-8
        ("POST", f"{base}/k?op=add", b"x" * (1024 * 1024 + 1), 413),
        ("POST", f"{base}/a%23b?op=add", b"", 400),  # '#' cannot be in a table key
        ("POST", f"{base}/a%01b?op=add", b"", 400),  # control character
        ("POST", f"{base}/a%5Cb?op=add", b"", 400),  # backslash
        ("GET", f"{base}?top=abc", None, 400),
        ("GET", f"{base}?top=0", None, 400),
        ("GET", f"{base}?fetchState=maybe", None, 400),
        ("GET", f"{base}?top=99999", None, 400),
    ]
    for method, url, body, expected in cases:
        async with http.request(method, url, data=body) as resp:
            assert resp.status == expected, (method, url)
            assert "error" in await resp.json(), url
    async with http.get(base, headers={"x-ms-continuation-token": "garbage!"}) as resp:
        assert resp.status == 400 and "error" in await resp.json()
    # a missing body is fine (no input), and bad inputs did not create anything
    assert await signal(http, host.url, "counter", "k", "get") == 202
    await host.wait_idle()
    assert (await read_state(http, host.url, "counter", "a#b"))[0] in {400, 404}


async def test_raw_body_is_the_input_token(host: LocalHost, http: aiohttp.ClientSession):
    # Exactly what the Durable extension does: the posted JSON token is the operation input.
    url = f"{host.url}{ENTITY_API}/counter/raw"
    async with http.post(url, params={"op": "add"}, data=sdk_body(9)) as resp:
        assert resp.status == 202
        assert await resp.read() == b""
    await wait_state(http, host.url, "counter", "raw", 9)
