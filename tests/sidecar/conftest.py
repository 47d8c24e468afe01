"""Fixtures for the sidecar tests: a sidecar per test module on the session's Azurite (a task hub of
its own), run on an event loop in a thread, since Microsoft's durabletask client and worker are
synchronous and threaded, and helpers to run their worker and client against it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from durabletask import client as dt_client
from durabletask import worker as dt_worker
from durabletask.grpc_options import GrpcWorkerResiliencyOptions

from harness.azurite import Azurite
from harness.host.sidecar.server import Sidecar
from harness.processes import free_port, port_is_open

REPO = Path(__file__).resolve().parents[2]


class LoopThread:
    """An event loop in a daemon thread, for what runs on asyncio (the sidecar)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True, name="sidecar-loop")
        self.thread.start()

    def run(self, coro: Any, timeout: float = 60) -> Any:
        future: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return future.result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture(scope="module")
def sidecar(azurite: Azurite, request: pytest.FixtureRequest) -> Iterator[Sidecar]:
    """A sidecar in-process on free ports, over a task hub of this module's own (on virtual time
    when the module sets `SIDECAR_TIME = "manual"` or `"auto"`)."""
    loop = LoopThread()
    time_mode = getattr(request.module, "SIDECAR_TIME", "real")
    hub = "s" + uuid.uuid4().hex[:12]
    running = Sidecar(storage=azurite.connection_string, grpc_port=0, hub=hub, time=time_mode)
    try:

        async def start() -> None:
            await running.start()

        loop.run(start())
        yield running
        loop.run(running.stop())
    finally:
        loop.close()


@contextmanager
def running_worker(
    address: str,
    orchestrators: list[Callable[..., Any]],
    activities: list[Callable[..., Any]],
    entities: list[Callable[..., Any]] = (),  # type: ignore[assignment]
) -> Iterator[dt_worker.TaskHubGrpcWorker]:
    """Microsoft's worker, connected to `address` with these functions, stopped at the end."""
    # Reconnects within half a second (the default backs off up to 30 s): the crash tests restart
    # the sidecar under a connected worker.
    quick = GrpcWorkerResiliencyOptions(reconnect_backoff_base_seconds=0.1, reconnect_backoff_cap_seconds=0.5)
    worker = dt_worker.TaskHubGrpcWorker(host_address=address, resiliency_options=quick)
    for entity in entities:
        worker.add_entity(entity)
    for orchestrator in orchestrators:
        worker.add_orchestrator(orchestrator)
    for activity in activities:
        worker.add_activity(activity)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def new_client(address: str) -> dt_client.TaskHubGrpcClient:
    """Microsoft's client for `address`."""
    return dt_client.TaskHubGrpcClient(host_address=address)


def new_id(prefix: str = "i") -> str:
    """An instance id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def wait_for(condition: Callable[[], bool], timeout: float = 30) -> None:
    """A bounded poll."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def spawn(args: list[str], log: Path, **env: str) -> subprocess.Popen[bytes]:
    """A child process with its output in `log`. Plain Popen (posix_spawn, no fork): forking a
    process whose gRPC threads run (the worker's, the client's) can crash it."""
    with open(log, "ab") as out:
        return subprocess.Popen(args, cwd=REPO, env={**os.environ, **env}, stdout=out, stderr=out)


def kill(proc: subprocess.Popen[bytes]) -> None:
    """SIGKILL (a crash) and reap."""
    proc.kill()
    proc.wait()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 10 s."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            kill(proc)


class SidecarProcess:
    """`python -m harness sidecar` on fixed ports over the session's Azurite (restartable)."""

    def __init__(self, storage: str, logs: Path) -> None:
        self.grpc_port, self.port = free_port(), free_port()
        self.hub = "k" + uuid.uuid4().hex[:12]
        self.address = f"localhost:{self.grpc_port}"
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = [sys.executable, "-m", "harness", "sidecar", "--storage", storage, "--hub", self.hub]
        self.args += ["--grpc-port", str(self.grpc_port), "--port", str(self.port)]
        self.log = logs / "sidecar.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = spawn(self.args, self.log)
        wait_for(self._ready, 60)

    def _ready(self) -> bool:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()
        try:
            with urllib.request.urlopen(self.url + "/admin/host/status", timeout=1) as response:
                status = json.loads(response.read())
        except OSError:
            return False
        return status.get("taskHubLease") == "held" and port_is_open(self.grpc_port)

    def instance(self, iid: str) -> dict[str, Any]:
        """The instance as the HTTP API shows it, with its history."""
        url = (
            f"{self.url}/runtime/webhooks/durabletask/instances/{iid}?showHistory=true&showHistoryOutput=true"
        )
        with urllib.request.urlopen(url, timeout=10) as response:
            return dict(json.loads(response.read()))

    def finished(self, iid: str) -> bool:
        return self.instance(iid)["runtimeStatus"] in ("Completed", "Failed", "Terminated")

    def api(self, method: str, path: str, body: Any = None) -> Any:
        """A call to the Durable HTTP API (`path` under /runtime/webhooks/durabletask), its JSON."""
        data = None if body is None else json.dumps(body).encode()
        url = f"{self.url}/runtime/webhooks/durabletask{path}"
        request = urllib.request.Request(url, data=data, method=method)
        request.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(request, timeout=10) as response:
            text = response.read()
        return json.loads(text) if text else None


@pytest.fixture
def sidecar_process(azurite: Azurite, tmp_path: Path) -> Iterator[SidecarProcess]:
    running = SidecarProcess(azurite.connection_string, tmp_path)
    running.start()
    try:
        yield running
    finally:
        assert running.process is not None
        stop(running.process)
