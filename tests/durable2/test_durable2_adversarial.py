"""A 2.x app's host treated as users do, found wanting once: the host SIGTERMed alone (as `kill PID`,
`docker stop` or a supervisor do, not the whole process group) while an HTTP call is in flight, an
app Python behind a wrapper that prints to stdout before it runs Python, and an HTTP function whose
return value is no response.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import signal
import threading
import time
from pathlib import Path

import httpx

from harness.azurite import Azurite
from harness.host.isolated.process import AppProcess
from harness.host.server import STOP_GRACE_ENV
from harness.processes import pid_alive

from .conftest import app_host

APP = Path(__file__).resolve().parent / "adversarial"


def wait_until(done: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def call_quietly(url: str) -> None:
    """A caller whose connection the stopping host may drop (what it gets is not asserted here)."""
    with contextlib.suppress(httpx.HTTPError):
        httpx.get(url, timeout=150)


def test_http_function_returning_what_is_no_response_fails(
    azurite: Azurite, durable2_python: str, tmp_path: Path
) -> None:
    """A generator (a streaming body) is not an HTTP answer: the call fails naming its type, as it
    does in the host's process, never a 200 whose body is the generator's repr."""
    with app_host(APP, azurite, durable2_python, tmp_path) as host:
        answer = httpx.get(f"{host.url}/api/generator", timeout=30)
    assert answer.status_code == 500, answer.text
    assert "generator" in answer.json()["error"]
    assert "<generator object" not in answer.text


def test_host_sigterm_alone_mid_call_ends_host_and_app(
    azurite: Azurite, durable2_python: str, tmp_path: Path
) -> None:
    """The host's stop gives up after its grace (10 s; 2 s here) when a call outlasts it; then the host
    must still exit, and the app's process with it, instead of waiting forever for a child that waits
    for the host."""
    with app_host(APP, azurite, durable2_python, tmp_path, env={STOP_GRACE_ENV: "2"}) as host:
        app = int(httpx.get(f"{host.url}/api/pid", timeout=30).text)
        caller = threading.Thread(
            target=call_quietly, args=(f"{host.url}/api/sleep?seconds=120",), daemon=True
        )
        caller.start()
        wait_until(
            lambda: "Executing 'Functions.sleep'" in host.log_path.read_text(), 30, "the call never began"
        )
        host_pid = host.pid
        assert host_pid is not None
        os.kill(host_pid, signal.SIGTERM)
        wait_until(lambda: not pid_alive(host_pid), 40, "the host did not exit after SIGTERM")
        wait_until(lambda: not pid_alive(app), 10, "the app's process outlived the host")
        assert "stop did not finish within 2 s" in host.log_path.read_text()  # the grace ended it


async def test_app_python_behind_a_chatty_wrapper_loads(durable2_python: str, tmp_path: Path) -> None:
    """A wrapper (an env activation, a shim) that prints to stdout before it execs the real Python:
    its lines are not the bridge's, the app still loads, and the start is never a hang."""
    wrapper = tmp_path / "python"
    wrapper.write_text(
        f'#!/bin/sh\necho "activating the env"\necho "{{not json"\nexec {durable2_python} "$@"\n'
    )
    wrapper.chmod(0o755)
    process = AppProcess(str(wrapper), APP)
    try:
        description = await asyncio.wait_for(process.start(), 60)
        assert {"pid", "sleep"} <= {f["name"] for f in description["functions"]}
        request = {"http": {"method": "GET", "url": "http://localhost/api/pid"}}
        answer = await asyncio.wait_for(process.call("pid", {"req": request}), 30)
        assert int(base64.b64decode(answer["http"]["body"])) == process.pid
    finally:
        await process.stop()
