"""HTTP triggers over real HTTP: routing, sync functions in threads, errors, keys, readiness."""

import aiohttp

from harness.host import LocalHost

from .conftest import COUNTER_APP
from .helpers import ENTITY_API, signal


async def test_status_probe(host: LocalHost, http: aiohttp.ClientSession):
    async with http.get(f"{host.url}/admin/host/status") as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["state"] == "Running" and body["id"] and body["version"]


async def test_sync_function_runs_in_a_thread_with_context(host: LocalHost, http: aiohttp.ClientSession):
    async with http.get(f"{host.url}/api/hello", params={"name": "Ada"}) as resp:
        assert resp.status == 200
        body = await resp.json()
    assert body["hello"] == "Ada"
    assert body["thread"].startswith("host-worker")
    assert body["function"] == "hello" and body["invocation_id"]


async def test_route_constraints_catch_all_and_str_return(host: LocalHost, http: aiohttp.ClientSession):
    async with http.get(f"{host.url}/API/Items/42/a/b") as resp:
        assert resp.status == 200
        assert resp.content_type == "text/plain"
        assert await resp.text() == "item 42 rest=a/b"
    async with http.get(f"{host.url}/api/items/42") as resp:
        assert await resp.text() == "item 42 rest="
    async with http.get(f"{host.url}/api/items/forty-two/a") as resp:
        assert resp.status == 404


async def test_wrong_method_is_405_json(host: LocalHost, http: aiohttp.ClientSession):
    async with http.delete(f"{host.url}/api/hello") as resp:
        assert resp.status == 405
        assert "error" in await resp.json()


async def test_exception_is_500_json_without_traceback(host: LocalHost, http: aiohttp.ClientSession):
    async with http.get(f"{host.url}/api/boom") as resp:
        assert resp.status == 500
        body = await resp.json()
    assert "boom on purpose" in body["error"]
    assert "Traceback" not in body["error"]


async def test_keys_not_enforced_by_default(host: LocalHost, http: aiohttp.ClientSession):
    async with http.get(f"{host.url}/api/secret") as resp:
        assert resp.status == 200


async def test_enforce_keys(azurite_connstr: str, hub: str, http: aiohttp.ClientSession):
    async with LocalHost(
        COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub, enforce_keys=True, function_key="sekrit"
    ) as host:
        async with http.get(f"{host.url}/api/secret") as resp:
            assert resp.status == 401
            assert "error" in await resp.json()
        async with http.get(f"{host.url}/api/secret", params={"code": "wrong"}) as resp:
            assert resp.status == 401
        async with http.get(f"{host.url}/api/secret", params={"code": "sekrit"}) as resp:
            assert resp.status == 200
        async with http.get(f"{host.url}/api/secret", headers={"x-functions-key": "sekrit"}) as resp:
            assert resp.status == 200
        async with http.get(f"{host.url}/api/hello") as resp:
            assert resp.status == 200  # anonymous
        # the public Durable API needs the key too; the app's own client (rpc base) does not
        assert await signal(http, host.url, "counter", "k", "add", 1) == 401
        keyed = {"x-functions-key": "sekrit"}
        assert await signal(http, host.url, "counter", "k", "add", 1, headers=keyed) == 202
        async with http.post(f"{host.url}/api/counters/k/add", json=2) as resp:
            assert resp.status == 202
        await host.wait_idle()
        async with http.get(f"{host.url}{ENTITY_API}/counter/k", params={"code": "sekrit"}) as resp:
            assert await resp.json() == 3
        async with http.get(f"{host.url}/admin/host/status") as resp:
            assert resp.status == 200
