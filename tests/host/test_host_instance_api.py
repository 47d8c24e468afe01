"""The instance API through the SDK's own DurableOrchestrationClient, and under hostile input."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import aiohttp
import azure.durable_functions as df
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .test_host_orchestrations import API, host  # noqa: F401 - the fixture

TERMINAL = (
    df.OrchestrationRuntimeStatus.Completed,
    df.OrchestrationRuntimeStatus.Failed,
    df.OrchestrationRuntimeStatus.Terminated,
)


async def wait_status(client: df.DurableOrchestrationClient, iid: str, wanted, timeout: float = 15.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        found = await client.get_status(iid)
        if found.runtime_status in wanted:
            return found
        assert asyncio.get_running_loop().time() < deadline, f"{iid} is {found.runtime_status}"
        await asyncio.sleep(0.05)


async def test_the_sdk_client_drives_every_instance_operation(host):  # noqa: F811
    client = df.DurableOrchestrationClient(host.client_binding())
    prefix = uuid.uuid4().hex[:8]
    iid = await client.start_new("approval", f"{prefix}-a", {"timeout": 60})
    assert iid == f"{prefix}-a"
    running = await wait_status(client, iid, (df.OrchestrationRuntimeStatus.Running,))
    assert running.input_ == {"timeout": 60} and running.name == "approval"
    await client.suspend(iid, "hold on")
    await wait_status(client, iid, (df.OrchestrationRuntimeStatus.Suspended,))
    await client.raise_event(iid, "Approval", {"ok": 1})  # kept while suspended
    await asyncio.sleep(0.2)
    assert (await client.get_status(iid)).runtime_status == df.OrchestrationRuntimeStatus.Suspended
    await client.resume(iid, "go on")
    done = await wait_status(client, iid, TERMINAL)
    assert done.runtime_status == df.OrchestrationRuntimeStatus.Completed and done.output == {
        "approved": {"ok": 1}
    }
    with_history = await client.get_status(iid, show_history=True, show_history_output=True)
    kinds = [e["EventType"] for e in with_history.historyEvents]
    assert "ExecutionSuspended" in kinds and "ExecutionResumed" in kinds and kinds[-1] == "ExecutionCompleted"

    other = await client.start_new("approval", f"{prefix}-b", {"timeout": 60})
    await wait_status(client, other, (df.OrchestrationRuntimeStatus.Running,))
    await client.terminate(other, "no longer needed")
    terminated = await wait_status(client, other, TERMINAL)
    assert terminated.runtime_status == df.OrchestrationRuntimeStatus.Terminated
    assert terminated.output == "no longer needed"
    history = (await client.get_status(other, show_history=True)).historyEvents
    assert [e["EventType"] for e in history][-2:] == ["ExecutionTerminated", "ExecutionCompleted"]
    assert history[-2]["Reason"] == "no longer needed" and history[-1]["OrchestrationStatus"] == "Terminated"

    everything = await client.get_status_all()
    assert {iid, other} <= {s.instance_id for s in everything}
    completed = await client.get_status_by(runtime_status=[df.OrchestrationRuntimeStatus.Completed])
    assert iid in {s.instance_id for s in completed} and other not in {s.instance_id for s in completed}

    assert (await client.purge_instance_history(iid)).instances_deleted == 1
    assert not await client.get_status(iid)
    since = datetime.now(UTC) - timedelta(minutes=5)
    purged = await client.purge_instance_history_by(since, None, [df.OrchestrationRuntimeStatus.Terminated])
    assert purged.instances_deleted >= 1
    assert not await client.get_status(other)


async def test_listing_pages_with_continuation_tokens(host, http):  # noqa: F811
    prefix = "page" + uuid.uuid4().hex[:6]
    for i in range(5):
        async with http.post(f"{host.url}{API}/orchestrators/plain/{prefix}{i}", json=i) as resp:
            assert resp.status == 202
    seen: list[str] = []
    headers: dict[str, str] = {}
    while True:
        params = {"instanceIdPrefix": prefix, "top": "2", "showInput": "true"}
        async with http.get(f"{host.url}{API}/instances", params=params, headers=headers) as resp:
            assert resp.status == 200
            page = await resp.json()
            assert len(page) <= 2
            seen.extend(item["instanceId"] for item in page)
            token = resp.headers.get("x-ms-continuation-token")
        if not token:
            break
        headers = {"x-ms-continuation-token": token}
    assert seen == [f"{prefix}{i}" for i in range(5)]


async def test_starting_an_id_that_still_runs_is_a_conflict(host, http):  # noqa: F811
    iid = "dup" + uuid.uuid4().hex
    async with http.post(f"{host.url}{API}/orchestrators/approval/{iid}", json={"timeout": 60}) as resp:
        assert resp.status == 202
    async with http.post(f"{host.url}{API}/orchestrators/approval/{iid}", json={"timeout": 60}) as resp:
        assert resp.status == 409 and "already" in (await resp.json())["error"]


async def test_finished_instances_refuse_events_with_410(host, http):  # noqa: F811
    iid = "gone" + uuid.uuid4().hex
    async with http.post(f"{host.url}{API}/orchestrators/plain/{iid}", json=1) as resp:
        assert resp.status == 202
    for _ in range(200):
        async with http.get(f"{host.url}{API}/instances/{iid}") as resp:
            if (await resp.json())["runtimeStatus"] == "Completed":
                break
        await asyncio.sleep(0.05)
    for path in (f"raiseEvent/{'x'}", "terminate", "suspend"):
        async with http.post(f"{host.url}{API}/instances/{iid}/{path}", json=1) as resp:
            assert resp.status == 410 and "Completed" in (await resp.json())["error"]


BAD_REQUESTS = [
    ("POST", "/orchestrators/nope", None, 404),
    ("POST", "/orchestrators/plain/a%23b", None, 400),
    ("POST", "/orchestrators/plain/" + "x" * 300, None, 400),
    ("POST", "/orchestrators/plain/ok", b"{not json", 400),
    ("POST", "/orchestrators/plain/ok2", b"[" * 100_000 + b"]" * 100_000, 400),
    ("POST", "/orchestrators/plain/ok3", b'"' + b"a" * (1024 * 1024 + 10) + b'"', 413),
    ("GET", "/instances/missing-" + "m", None, 404),
    ("GET", "/instances?runtimeStatus=Sleeping", None, 400),
    ("GET", "/instances?top=0", None, 400),
    ("GET", "/instances?top=ten", None, 400),
    ("GET", "/instances?createdTimeFrom=yesterday", None, 400),
    ("GET", "/instances?showInput=maybe", None, 400),
    ("DELETE", "/instances", None, 400),
    ("POST", "/instances/missing/raiseEvent/E", b"1", 404),
    ("POST", "/instances/missing/terminate", None, 404),
    ("POST", "/instances/missing/rewind", None, 501),
    ("DELETE", "/instances/missing", None, 404),
    ("GET", "/instances/%F0%9F%98%80x", None, 404),
]


async def test_hostile_requests_get_json_errors(host, http):  # noqa: F811
    for method, path, body, expected in BAD_REQUESTS:
        headers = {"x-ms-continuation-token": "garbage"} if "instances?" in path else {}
        async with http.request(method, f"{host.url}{API}{path}", data=body, headers=headers) as resp:
            assert resp.status == expected, (method, path, resp.status, await resp.text())
            assert "error" in json.loads(await resp.text()), path
    async with http.get(f"{host.url}{API}/instances", headers={"x-ms-continuation-token": "!!"}) as resp:
        assert resp.status == 400 and "continuation" in (await resp.json())["error"]


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    iid=st.text(min_size=1, max_size=300),
    data=st.recursive(
        st.none() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    ),
)
async def test_any_instance_id_and_input_is_accepted_or_refused_with_json(host, iid, data):  # noqa: F811
    async with aiohttp.ClientSession() as http:
        url = f"{host.url}{API}/orchestrators/plain/{quote(iid, safe='')}"
        async with http.post(url, data=json.dumps(data)) as resp:
            assert resp.status in (202, 400, 404, 409), (iid, resp.status)
            body = json.loads(await resp.text())
            if resp.status != 202:
                assert "error" in body
                continue_check = False
            else:
                continue_check = True
        if continue_check:
            async with http.get(body["statusQueryGetUri"]) as resp:
                assert resp.status in (200, 202)
                assert (await resp.json())["input"] == data
