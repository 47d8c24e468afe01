"""The instance API through the SDK's own DurableOrchestrationClient, and under hostile input."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import aiohttp
import azure.durable_functions as df
import httpx
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from yarl import URL

from harness.host.orchestrations.api import payload_text
from harness.host.orchestrations.store import invalid_instance_id

from .test_host_orchestrations import API, host  # noqa: F401 - the fixture

TERMINAL = (
    df.OrchestrationRuntimeStatus.Completed,
    df.OrchestrationRuntimeStatus.Failed,
    df.OrchestrationRuntimeStatus.Terminated,
)
TERMINAL_NAMES = ("Completed", "Failed", "Terminated")


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
    await host.wait_idle()  # the instance's worker has taken the event (and kept it)
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
    ("POST", "/instances/missing/rewind", None, 404),
    ("POST", "/instances/missing/rewind?toEvent=two", None, 400),
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


# Ids whose URLs go wrong when the id is put into a path raw: an escape that decodes to a refused
# character or to another id, a lone '%', a space, characters outside ASCII, query and path delimiters
# that are fine in a path segment.
URL_HOSTILE_IDS = [
    *("a%2Fb", "a%2fb%3F%23", "%41", "%", "%zz"),
    *("a b", " x ", "ü€😀", "a+b", "a&b=c;d,e", "~!$'()*:@x", ".x.", "{a}", "}{"),
]
ESCAPE = re.compile("%[0-9A-Fa-f]{2}")


def sdk_can_express(iid: str) -> bool:
    """The SDK puts ids into its URLs raw (as against Azure): an id holding a percent escape reaches
    the host as the id that escape decodes to, so only other ids can be followed there."""
    return not ESCAPE.search(iid)


async def poll_json(web: httpx.AsyncClient, url: str, done, timeout: float = 15.0) -> dict:
    """GET `url` until its JSON body satisfies `done` (bounded)."""
    deadline = time.monotonic() + timeout
    while True:
        resp = await web.get(url)
        assert resp.status_code in (200, 202), (url, resp.status_code, resp.text)
        body = resp.json()
        if done(body):
            return body
        assert time.monotonic() < deadline, (url, body)
        await asyncio.sleep(0.02)


def finished(status: dict) -> bool:
    return status["runtimeStatus"] in TERMINAL_NAMES


async def follow_finished_links(web: httpx.AsyncClient, links: dict[str, str], iid: str) -> None:
    """Follow every URL of a finished instance's check-status response and see each reach `iid`;
    ends by purging it."""
    assert links["id"] == iid
    status = await poll_json(web, links["statusQueryGetUri"], finished)
    assert status["instanceId"] == iid
    for key in ("sendEventPostUri", "terminatePostUri", "suspendPostUri", "resumePostUri"):
        url = links[key].replace("{eventName}", "E").replace("{text}", "why")
        resp = await web.post(url, json=1)
        # 410 names the instance it found finished; any other instance would be a 404 or a 400
        assert resp.status_code == 410 and repr(iid) in resp.json()["error"], (key, url, resp.text)
    resp = await web.post(links["restartPostUri"] + "&restartWithNewInstanceId=false")
    assert resp.status_code == 202, (links["restartPostUri"], resp.text)
    assert resp.json()["id"] == iid and resp.headers["location"] == links["statusQueryGetUri"]
    await poll_json(web, links["statusQueryGetUri"], finished)
    resp = await web.delete(links["purgeHistoryDeleteUri"])
    assert resp.status_code == 200 and resp.json() == {"instancesDeleted": 1}, resp.text
    assert (await web.get(links["statusQueryGetUri"])).status_code == 404


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    iid=st.text(min_size=1, max_size=300),
    data=st.recursive(
        st.none() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
        max_leaves=20,
    ),
)
@example(iid=URL_HOSTILE_IDS[0], data=None)
@example(iid=URL_HOSTILE_IDS[2], data={"a": [1]})
@example(iid="..", data=0)
@example(iid="{", data=0)
async def test_any_instance_id_and_input_is_accepted_or_refused_with_json(host, iid, data):  # noqa: F811
    async with aiohttp.ClientSession() as http, httpx.AsyncClient(timeout=10) as web:
        # escaped as one segment, the dots of '.' and '..' too (a client resolves those away)
        segment = iid.replace(".", "%2E") if iid in (".", "..") else quote(iid, safe="")
        url = URL(f"{host.url}{API}/orchestrators/plain/{segment}", encoded=True)
        async with http.post(url, data=json.dumps(data)) as resp:
            body = json.loads(await resp.text())
            location = resp.headers.get("Location")
        problem = invalid_instance_id(iid)
        if problem is not None:  # refused, for the reason the id check gives
            assert resp.status == 400 and body == {"error": problem}, (iid, resp.status, body)
            return
        assert resp.status == 202, (iid, resp.status, body)
        assert location == body["statusQueryGetUri"]
        status = await poll_json(web, location, finished)
        # a JSON string holding JSON text is taken as the client's double encoding (see orchestrations/api.py)
        assert status["instanceId"] == iid and status["input"] == json.loads(payload_text(data))
        if sdk_can_express(iid):
            client = df.DurableOrchestrationClient(host.client_binding())
            assert (await client.get_status(iid)).instance_id == iid
            sdk_links = client.create_http_management_payload(iid)
            assert (await web.get(sdk_links["statusQueryGetUri"])).json()["instanceId"] == iid
        await follow_finished_links(web, body, iid)


async def test_check_status_urls_reach_a_running_instance_whatever_its_id(host):  # noqa: F811
    """Suspend, resume and an event through the URLs the host and the SDK give, for ids that break
    when put into a URL raw; the Location of a 202 status answer leads back to the same instance."""
    client = df.DurableOrchestrationClient(host.client_binding())
    async with httpx.AsyncClient(timeout=10) as web:
        for n, hostile in enumerate(URL_HOSTILE_IDS):
            iid = f"{hostile}{uuid.uuid4().hex[:6]}"
            if sdk_can_express(iid) and n % 2:  # the SDK's start_new and create_check_status_response
                url, params = f"{host.url}/api/start/approval", {"id": iid}
            else:
                url, params = f"{host.url}{API}/orchestrators/approval/{quote(iid, safe='')}", {}
            resp = await web.post(url, params=params, json={"timeout": 60})
            assert resp.status_code == 202, (iid, resp.text)
            links = resp.json()
            assert links["id"] == iid and resp.headers["location"] == links["statusQueryGetUri"]
            await poll_json(web, links["statusQueryGetUri"], lambda b: b["customStatus"] is not None)
            running = await web.get(links["statusQueryGetUri"])
            assert running.status_code == 202
            assert (await web.get(running.headers["location"])).json()["instanceId"] == iid
            for key, wanted in (("suspendPostUri", "Suspended"), ("resumePostUri", "Running")):
                resp = await web.post(links[key].replace("{text}", "because"))
                assert resp.status_code == 202, (key, resp.text)
                await poll_json(web, links["statusQueryGetUri"], lambda b, w=wanted: b["runtimeStatus"] == w)
            event_url = links["sendEventPostUri"].replace("{eventName}", "Approval")
            assert (await web.post(event_url, json={"ok": n})).status_code == 202
            done = await poll_json(web, links["statusQueryGetUri"], finished)
            assert done["output"] == {"approved": {"ok": n}}, (iid, done)
            if sdk_can_express(iid):
                assert (await client.get_status(iid)).output == {"approved": {"ok": n}}
            assert (await web.delete(links["purgeHistoryDeleteUri"])).status_code == 200


async def test_dot_segment_ids_are_refused_at_start(host, http):  # noqa: F811
    """'.' and '..' cannot be a path segment (clients resolve them away), so no URL could reach them."""
    for raw in ("%2E", "%2E%2E", "%2e", "."):
        url = URL(f"{host.url}{API}/orchestrators/plain/{raw}", encoded=True)
        async with http.post(url, json=1) as resp:
            assert resp.status == 400, (raw, resp.status, await resp.text())
            assert "URL path" in (await resp.json())["error"], raw


async def test_braces_in_ids_event_names_and_entity_keys_reach_their_routes(host):  # noqa: F811
    """A route variable takes any one path segment: '{' and '}' are fine in ids, names and keys (the
    SDK's client sends them raw)."""
    client = df.DurableOrchestrationClient(host.client_binding())
    iid = await client.start_new("two_events", f"{{run}}-{uuid.uuid4().hex[:6]}")
    await wait_status(client, iid, (df.OrchestrationRuntimeStatus.Running,))
    await client.raise_event(iid, "Step", "a")
    await client.raise_event(iid, "Step", "{b}")
    done = await wait_status(client, iid, TERMINAL)
    assert done.output == ["a", "{b}"]
    entity = df.EntityId("Counter", "{key}")
    await client.signal_entity(entity, "add", 2)
    deadline = time.monotonic() + 10
    while not (state := await client.read_entity_state(entity)).entity_exists:
        assert time.monotonic() < deadline, "the signal was not applied"
        await asyncio.sleep(0.02)
    assert state.entity_state == 2
