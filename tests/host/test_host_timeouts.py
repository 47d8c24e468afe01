"""functionTimeout: a hung function cannot wedge the host (real host subprocesses, real Azurite).

The test app's host.json sets functionTimeout to two seconds; tests that need functions to stay
hung override it with the app setting `AzureFunctionsJobHost__functionTimeout`, as on Azure.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import pytest

from harness.host.server import STOP_GRACE_ENV
from harness.host.settings import HostConfig, SettingsError, parse_timespan

from .conftest import REPO
from .helpers import signal as signal_entity
from .helpers import wait_state
from .test_host_orchestration_crash import poll, start_api
from .test_host_orchestrations import API

TIMEOUT_APP = Path(__file__).resolve().parent / "timeout_app"
OVERRIDE = "AzureFunctionsJobHost__functionTimeout"


async def wait_marks(path: Path, count: int, timeout: float = 20.0) -> None:
    """Wait until `count` hung functions have started (each appends a line to `path`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.is_file() and len(path.read_text().splitlines()) >= count:
            return
        await asyncio.sleep(0.05)
    seen = len(path.read_text().splitlines()) if path.is_file() else 0
    raise AssertionError(f"only {seen} of {count} hung functions started")


def finished(body: dict) -> bool:
    return body["runtimeStatus"] in ("Completed", "Failed", "Terminated")


async def test_hung_activity_times_out_and_the_orchestrator_catches_it(host_process, http):
    start, _ = host_process
    url = start(TIMEOUT_APP)
    iid = await start_api(http, url, "catcher", {"seconds": 120})
    body = await poll(http, url, iid, finished, timeout=30)
    assert body["runtimeStatus"] == "Completed", body
    caught = body["output"]["caught"]
    assert caught is not None and "hang" in caught and "00:00:02" in caught, caught
    assert body["output"]["after"] == 42


async def test_terminated_hung_activities_free_their_slots(host_process, http, tmp_path, monkeypatch):
    """24 hung activities over two instances hold all 20 activity slots; terminating the instances
    frees them, so another instance's activity runs."""
    monkeypatch.setenv(OVERRIDE, "00:10:00")
    start, _ = host_process
    url = start(TIMEOUT_APP)
    mark = tmp_path / "hung"
    hung = [await start_api(http, url, "fan_hang", {"n": 12, "mark": str(mark)}) for _ in range(2)]
    await wait_marks(mark, 20)
    for iid in hung:
        async with http.post(f"{url}{API}/instances/{iid}/terminate", params={"reason": "hung"}) as resp:
            assert resp.status == 202, await resp.text()
    for iid in hung:
        assert (await poll(http, url, iid, finished))["runtimeStatus"] == "Terminated"
    later = await start_api(http, url, "one_quick", 1)
    body = await poll(http, url, later, finished, timeout=20)
    assert body["runtimeStatus"] == "Completed" and body["output"] == 2, body


async def test_sigterm_with_hung_threads_exits_within_the_grace_period(
    host_process, http, tmp_path, monkeypatch
):
    monkeypatch.setenv(OVERRIDE, "00:10:00")
    grace = 2.0  # the default ten seconds would be the same check, eight seconds longer
    monkeypatch.setenv(STOP_GRACE_ENV, str(grace))
    start, procs = host_process
    url = start(TIMEOUT_APP)
    mark = tmp_path / "hung"
    await start_api(http, url, "fan_hang", {"n": 5, "mark": str(mark)})
    requests = [
        asyncio.create_task(http.get(f"{url}/api/{route}", params={"mark": str(mark)}))
        for route in ("slow", "slow_to_thread")
    ]
    await wait_marks(mark, 7)
    sent = time.monotonic()
    procs[-1].send_signal(signal.SIGTERM)
    try:
        code = await asyncio.to_thread(procs[-1].wait, grace + 5)
    except subprocess.TimeoutExpired:
        procs[-1].kill()
        raise AssertionError("the host did not exit after SIGTERM") from None
    assert code == 0
    assert time.monotonic() - sent < grace + 1
    log = (tmp_path / "host0.log").read_text()
    assert f"stop did not finish within {grace:g} s" in log, log[-3000:]  # the grace ended the stop
    for request in requests:
        request.cancel()
    await asyncio.gather(*requests, return_exceptions=True)


@pytest.mark.parametrize("route", ["slow", "slow_async"])
async def test_http_trigger_over_the_timeout_gets_a_json_error(host_process, http, route):
    start, _ = host_process
    url = start(TIMEOUT_APP)
    started = time.monotonic()
    async with http.get(f"{url}/api/{route}", timeout=aiohttp.ClientTimeout(total=30)) as resp:
        body = await resp.json(content_type=None)
        assert resp.status == 500, body
    assert "00:00:02" in body["error"] and route in body["error"], body
    assert time.monotonic() - started < 15


async def test_an_entity_operation_over_the_timeout_is_dropped_and_the_entity_goes_on(host_process, http):
    start, _ = host_process
    url = start(TIMEOUT_APP)
    assert await signal_entity(http, url, "tally", "k", "add", 1) == 202
    await wait_state(http, url, "tally", "k", 1)
    assert await signal_entity(http, url, "tally", "k", "hang") == 202
    assert await signal_entity(http, url, "tally", "k", "add", 2) == 202
    # The batch times out, is retried one signal at a time, and the hung one is dropped.
    await wait_state(http, url, "tally", "k", 3, timeout=20)


async def test_a_queue_message_over_the_timeout_is_retried_then_poisoned(
    host_process, azurite_connstr, monkeypatch
):
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.queue import BinaryBase64EncodePolicy
    from azure.storage.queue.aio import QueueClient

    from harness.host.triggers.queues import message_text

    name = f"hung-{uuid.uuid4().hex[:12]}"
    monkeypatch.setenv("HUNG_QUEUE", name)
    start, procs = host_process
    start(TIMEOUT_APP)
    queue = QueueClient.from_connection_string(
        azurite_connstr, name, message_encode_policy=BinaryBase64EncodePolicy()
    )
    poison = QueueClient.from_connection_string(azurite_connstr, f"{name}-poison")
    marker = uuid.uuid4().hex
    async with queue, poison:
        await queue.send_message(marker.encode())
        deadline = time.monotonic() + 20  # two attempts of two seconds each, then the poison queue
        found = False
        while time.monotonic() < deadline and not found:
            try:
                found = any(message_text(m.content) == marker for m in await poison.peek_messages(32))
            except ResourceNotFoundError:  # not created yet
                pass
            await asyncio.sleep(0.1)
    assert found, "the hung message never reached the poison queue"
    assert procs[-1].poll() is None


async def test_a_timer_firing_over_the_timeout_is_abandoned_and_logged(host_process, tmp_path, monkeypatch):
    monkeypatch.setenv("HUNG_TIMER", "* * * * * *")  # every second
    start, _ = host_process
    start(TIMEOUT_APP)
    log = tmp_path / "host0.log"
    expected = "Executed 'Functions.hung_timer' (Failed): Timeout value of 00:00:02 was exceeded"
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and log.read_text().count(expected) < 2:
        await asyncio.sleep(0.1)
    assert log.read_text().count(expected) >= 2, log.read_text()[-3000:]


@pytest.mark.parametrize("grace", ["0", "soon", "nan"])
def test_a_bad_stop_grace_stops_the_start_with_one_line(grace: str, monkeypatch, caplog):
    from harness.host.server import main

    monkeypatch.setenv(STOP_GRACE_ENV, grace)
    assert main([str(TIMEOUT_APP), "--port", "0"]) == 2  # before anything starts: no storage needed
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert errors == [f"{STOP_GRACE_ENV} must be a number of seconds over 0, not {grace!r}"], caplog.text


def test_a_bad_function_timeout_stops_the_start_with_one_line(azurite_connstr, hub):
    env = dict(os.environ, DURABLEAGENT_TASK_HUB=hub, **{OVERRIDE: "ten minutes"})
    cmd = [sys.executable, "-m", "harness.host", str(TIMEOUT_APP), "--port", "0"]
    cmd += ["--storage", azurite_connstr]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2, done.stdout + done.stderr
    errors = [line for line in done.stdout.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and "functionTimeout" in errors[0] and "ten minutes" in errors[0], done.stdout
    assert "Traceback" not in done.stdout + done.stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("00:00:02", 2.0), ("01:30:00", 5400.0), ("1.02:00:00", 93600.0), ("00:00:01.5", 1.5), ("-1", None)],
)
def test_timespans(text: str, seconds: float | None):
    assert parse_timespan(text, "functionTimeout") == seconds


@pytest.mark.parametrize("text", ["", "5", "00:00:00", "1:2", "00:60:00", "-00:00:01", "abc"])
def test_bad_timespans(text: str):
    with pytest.raises(SettingsError, match="functionTimeout"):
        parse_timespan(text, "functionTimeout")


def test_function_timeout_defaults_to_30_minutes(tmp_path, monkeypatch):
    monkeypatch.delenv(OVERRIDE, raising=False)
    assert HostConfig.load(tmp_path).function_timeout == 1800.0
    assert HostConfig.load(TIMEOUT_APP).function_timeout == 2.0
    monkeypatch.setenv(OVERRIDE, "-1")
    assert HostConfig.load(TIMEOUT_APP).function_timeout is None


async def test_a_given_up_call_frees_its_place_in_the_pool():
    """The pool behind sync functions: a timed-out call's thread stops counting, so the next call
    runs although the first still hangs; the threads are daemons (never joined at exit)."""
    import threading

    from harness.host.workers import DaemonThreadPool, FunctionTimeoutError, within

    pool = DaemonThreadPool(1, thread_name_prefix="test-pool")
    release = threading.Event()
    loop = asyncio.get_running_loop()
    try:
        expected = r"Timeout value of 00:00:00\.2 was exceeded by function: Functions\.hung"
        with pytest.raises(FunctionTimeoutError, match=expected):
            await within(0.2, loop.run_in_executor(pool, release.wait, 60), "hung")
        assert await asyncio.wait_for(loop.run_in_executor(pool, lambda: 42), 10) == 42
        assert pool.counted == 1
        hung = [t for t in threading.enumerate() if t.name.startswith("test-pool")]
        assert len(hung) == 2 and all(t.daemon for t in hung)
    finally:
        release.set()
        pool.shutdown(wait=False)
