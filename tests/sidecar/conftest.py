"""Fixtures for the sidecar tests: a sidecar per test module on the session's Azurite (a task hub of
its own), run on an event loop in a thread, since Microsoft's durabletask client and worker are
synchronous and threaded, and helpers to run their worker and client against it."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import pytest
from durabletask import client as dt_client
from durabletask import worker as dt_worker
from durabletask.grpc_options import GrpcWorkerResiliencyOptions

from harness.azurite import Azurite
from harness.host.sidecar.server import Sidecar


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
