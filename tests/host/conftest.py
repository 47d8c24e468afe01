"""Fixtures for the local host tests: the plugin's session Azurite, a task hub per test."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import aiohttp
import pytest

from harness.azurite import Azurite
from harness.host import LocalHost
from harness.processes import free_port

REPO = Path(__file__).resolve().parents[2]
COUNTER_APP = REPO / "samples" / "counter"


@pytest.fixture(scope="session")
def azurite_connstr(azurite: Azurite) -> str:
    """Connection string of the session-wide Azurite (tests isolate by task hub)."""
    return azurite.connection_string


@pytest.fixture
def hub() -> str:
    """A task hub of its own for every test."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
async def host(azurite_connstr: str, hub: str) -> AsyncIterator[LocalHost]:
    """The counter sample served in-process on a free port."""
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def host_process(
    azurite_connstr: str, hub: str, tmp_path: Path
) -> Iterator[tuple[Callable[..., str], list[subprocess.Popen[bytes]]]]:
    """Start `python -m harness.host APP` subprocesses on one port (to SIGKILL them); yields
    `(start(app=COUNTER_APP) -> url, processes)`."""
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start(app: Path = COUNTER_APP) -> str:
        env = dict(os.environ, DURABLEAGENT_TASK_HUB=hub, PYTHONUNBUFFERED="1")
        log_path = tmp_path / f"host{len(procs)}.log"
        log = open(log_path, "wb")  # noqa: SIM115 - owned by the child
        cmd = [sys.executable, "-m", "harness.host", str(app), "--port", str(port)]
        cmd += ["--storage", azurite_connstr]
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=log)
        procs.append(proc)
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            assert proc.poll() is None, log_path.read_text()
            try:
                with urllib.request.urlopen(url + "/admin/host/status", timeout=1) as resp:
                    if resp.status == 200:
                        return url
            except OSError:
                time.sleep(0.05)
        raise AssertionError("host did not become ready")

    yield start, procs
    stuck = []
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                stuck.append(proc.pid)
    assert not stuck, f"host process(es) {stuck} ignored SIGTERM for 10 s (killed)"
