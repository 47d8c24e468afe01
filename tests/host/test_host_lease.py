"""One writer per task hub (issue 20): real host processes on one hub, the hub's lease in real Azurite.

Each host is `python -m harness.host` in a process of its own, started from the same folder the way
two terminals would start them, so the lease ids they take are whatever the host makes of that.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import aiohttp
import pytest
from azure.storage.blob.aio import BlobClient, BlobLeaseClient

from harness.host.entities.store import EntityStore, instance_id
from harness.host.storage.api_version import versioned
from harness.host.storage.lease import OWNER_BLOB
from harness.host.storage.tables import container_name_for
from harness.processes import ManagedProcess, StartupError, free_port

from .conftest import COUNTER_APP, REPO
from .helpers import ENTITY_API, sdk_body, signal, wait_state

BANNER_URL = re.compile(r"Durable API: (http://[0-9.]+:\d+)/")
INSTANCES = "/runtime/webhooks/durabletask/instances"


class Host:
    """One host process; `url` is read from its banner (so `--port 0` works)."""

    def __init__(self, process: ManagedProcess) -> None:
        self.process = process
        self.url = ""

    @property
    def pid(self) -> int:
        assert self.process.pid is not None
        return self.process.pid

    def log(self) -> str:
        return self.process.log_path.read_text(errors="replace")

    def outcome(self, timeout: float = 30.0) -> str:
        """'ready' once the banner is out and the host answers its status probe, or 'exited'."""

        def ready() -> bool:
            found = BANNER_URL.search(self.log())
            if not found:
                return False
            with urllib.request.urlopen(found.group(1) + "/admin/host/status", timeout=1) as resp:
                self.url = found.group(1)
                return resp.status == 200

        try:
            self.process.wait_ready(ready, timeout, interval=0.05, stop_on_failure=False)
        except StartupError:
            if self.process.returncode is not None:
                return "exited"
            raise
        return "ready"


@pytest.fixture
def hosts(azurite_connstr: str, hub: str, tmp_path: Path) -> Iterator[Callable[[int], Host]]:
    """`start(port)` spawns a host of the counter sample on `hub` (no wait); all are stopped after."""
    started: list[Host] = []

    def start(port: int) -> Host:
        args = [sys.executable, "-m", "harness.host", str(COUNTER_APP), "--port", str(port)]
        process = ManagedProcess(
            [*args, "--storage", azurite_connstr],
            log_path=tmp_path / f"host{len(started)}.log",
            name=f"host{len(started)}",
            env={"DURABLEAGENT_TASK_HUB": hub, "PYTHONUNBUFFERED": "1"},
            cwd=REPO,
        )
        host = Host(process.start())
        started.append(host)
        return host

    yield start
    for host in started:
        host.process.stop()


def _refused_by(host: Host, holder: Host, hub: str) -> bool:
    """Whether `host` exited naming `holder` as the host that has `hub`."""
    line = f"task hub '{hub}' is in use by another host (pid {holder.pid} "
    return host.process.returncode == 2 and line in host.log() and holder.url in host.log()


async def test_two_hosts_on_any_free_port_never_both_serve_one_hub(hosts, hub: str):
    """Two `--port 0` starts from one folder used to share a lease id, and both served the hub."""
    first = hosts(0)
    assert first.outcome() == "ready", first.log()
    second = hosts(0)
    assert second.outcome() == "exited", f"both hosts serve {hub}:\n{second.log()}"
    assert _refused_by(second, first, hub), second.log()


async def test_a_start_on_a_busy_port_leaves_the_running_hosts_lease_alone(
    hosts, hub: str, azurite_connstr: str, http: aiohttp.ClientSession
):
    port = free_port()
    first = hosts(port)
    assert first.outcome() == "ready", first.log()
    second = hosts(port)
    assert second.outcome() == "exited", second.log()
    assert second.process.returncode == 1 and "cannot start host" in second.log(), second.log()
    # The first host still holds its hub: the lease is there, it serves, and a third start is refused.
    async with _owner_blob(azurite_connstr, hub) as blob:
        props = await blob.get_blob_properties()
    assert props.lease.state == "leased", props.lease
    assert await signal(http, first.url, "counter", "busy", "add", 3) == 202
    await wait_state(http, first.url, "counter", "busy", 3)
    third = hosts(free_port())
    assert third.outcome() == "exited", f"a third host serves {hub} beside the first:\n{third.log()}"
    assert _refused_by(third, first, hub), third.log()


async def test_a_host_that_lost_its_lease_answers_503_until_it_takes_it_back(
    hosts, hub: str, azurite_connstr: str, http: aiohttp.ClientSession
):
    """Another holder (the test, posing as a host elsewhere) breaks the lease and takes it: the host
    must stop serving the hub's durable work, name the holder, and take over once it is released."""
    host = hosts(0)
    assert host.outcome() == "ready", host.log()
    assert await signal(http, host.url, "counter", "c", "add", 1) == 202
    await wait_state(http, host.url, "counter", "c", 1)
    thief = str(uuid.uuid4())
    async with _owner_blob(azurite_connstr, hub) as blob:
        stolen = BlobLeaseClient(blob, lease_id=thief)
        await stolen.break_lease(lease_break_period=0)
        await stolen.acquire(lease_duration=-1)
        holder = {"host": "elsewhere", "pid": "4242", "url": "http://thief:1"}
        await blob.set_blob_metadata(holder, lease=stolen)
        # Within a renewal period the host finds out and stops serving the hub's durable work.
        body = await _wait_status(
            http, f"{host.url}{ENTITY_API}/counter/c", 503, timeout=20, naming="pid 4242"
        )
        assert f"task hub '{hub}'" in body["error"] and "pid 4242 on elsewhere" in body["error"], body
        async with http.post(f"{host.url}{ENTITY_API}/counter/c", params={"op": "add"}, data='"1"') as resp:
            assert resp.status == 503 and "pid 4242" in (await resp.json())["error"]
        async with http.get(f"{host.url}{INSTANCES}") as resp:
            assert resp.status == 503 and "lease" in (await resp.json())["error"]
        assert "lost the lease" in host.log(), host.log()
        # Meanwhile the holder writes the hub: a new state, and a signal it has not applied yet.
        other = EntityStore(azurite_connstr, hub)
        try:
            await other.open()
            before = await other.read(instance_id("counter", "c"))
            await other.commit(before, "counter", "c", True, "5", [])
            await other.add_signal("counter", "c", "add", sdk_body(10))
        finally:
            await other.close()
        await stolen.release()
    # Released: the host takes the lease back and serves again from storage, not from its memory,
    # and picks up the work the other holder left.
    await _wait_status(http, f"{host.url}{ENTITY_API}/counter/c", 200, timeout=20)
    await wait_state(http, host.url, "counter", "c", 15)
    assert await signal(http, host.url, "counter", "c", "add", 1) == 202
    await wait_state(http, host.url, "counter", "c", 16)


def _owner_blob(connection_string: str, hub: str) -> BlobClient:
    """The hub's lease blob, through the azure-storage-blob client (no host code involved)."""
    return BlobClient.from_connection_string(
        connection_string, container_name_for(hub), OWNER_BLOB, **versioned()
    )


async def _wait_status(
    http: aiohttp.ClientSession, url: str, status: int, timeout: float, naming: str = ""
) -> dict:
    """Poll GET `url` until it answers `status` (JSON, its error naming `naming`); the last answer in
    the failure otherwise. (Between a refused renewal and the look at who holds the lease now, the
    503 says only that the renewal was refused.)"""
    deadline = time.monotonic() + timeout
    last: tuple[int, object] = (0, None)
    while time.monotonic() < deadline:
        async with http.get(url) as resp:
            last = (resp.status, await resp.json(content_type=None))
        if last[0] == status and (not naming or naming in str(last[1])):
            assert isinstance(last[1], dict) or status == 200, last
            return last[1] if isinstance(last[1], dict) else {"value": last[1]}
        await asyncio.sleep(0.1)
    raise AssertionError(f"{url} still answers {last} after {timeout:g} s, expected {status}")
