"""The sidecar's measurements, shown by `bench.bench_sidecar`: the same orchestrations through
Microsoft's `durabletask` worker and client, against `python -m harness sidecar` (durable, over
Azurite) and against `durabletask.testing`'s in-memory backend (which keeps nothing).

Worker and client run in this process, the sidecar in its own (as a user runs it).
A one-activity orchestration cannot cost less than its writes on the sidecar: the start, the first
episode's commit and the last one's (the activity's result travels in memory to the next episode,
and is made durable by that commit).
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Generator
from typing import Any

from durabletask import task

from .processes import free_port, terminate

FAN_OUT = 100
AT_ONCE = 50


def _square(_: Any, value: int) -> int:
    return value * value


def one_activity(ctx: Any, value: int) -> Generator[Any, Any, int]:
    result = yield ctx.call_activity(_square, input=value)
    return result


def fan_out(ctx: Any, count: int) -> Generator[Any, Any, int]:
    results = yield task.when_all([ctx.call_activity(_square, input=i) for i in range(count)])
    return sum(results)


def _measure(address: str, runs: int) -> dict[str, float]:
    """The figures of one backend at `address` (a worker and a client of its own)."""
    from durabletask import client as dt_client
    from durabletask import worker as dt_worker

    worker = dt_worker.TaskHubGrpcWorker(host_address=address)
    worker.add_orchestrator(one_activity)
    worker.add_orchestrator(fan_out)
    worker.add_activity(_square)
    worker.start()
    client = dt_client.TaskHubGrpcClient(host_address=address)
    try:

        def run(orchestrator: Callable[..., Any], value: int) -> float:
            began = time.perf_counter()
            iid = client.schedule_new_orchestration(orchestrator, input=value)
            state = client.wait_for_orchestration_completion(iid, timeout=120)
            assert state is not None and state.runtime_status.name == "COMPLETED", state
            return (time.perf_counter() - began) * 1000

        for _ in range(5):
            run(one_activity, 2)  # warm-up: channels, the worker's stream, the hub's first writes
        one = [run(one_activity, 2) for _ in range(runs)]
        fans = [run(fan_out, FAN_OUT) for _ in range(max(3, runs // 10))]
        began = time.perf_counter()
        ids = [client.schedule_new_orchestration(one_activity, input=i) for i in range(AT_ONCE)]
        for iid in ids:
            client.wait_for_orchestration_completion(iid, timeout=120)
        at_once = AT_ONCE / (time.perf_counter() - began)
    finally:
        worker.stop()
        client.close()
    return {
        "one activity, start to completion p50": statistics.median(one),
        "one activity, start to completion mean": statistics.fmean(one),
        f"{FAN_OUT}-activity fan-out p50": statistics.median(fans),
        f"{AT_ONCE} one-activity orchestrations at once": at_once,
    }


def measure_sidecar(connection_string: str, runs: int) -> tuple[dict[str, float], dict[str, float]]:
    """The figures on the sidecar (over `connection_string`'s storage) and in memory, by name. The
    sidecar runs as users run it, a process of its own (`python -m harness sidecar`); the in-memory
    backend in this process, as `durabletask.testing` is used."""
    from durabletask.testing import create_test_backend

    port = free_port()
    command = [sys.executable, "-m", "harness", "sidecar", "--storage", connection_string]
    command += ["--grpc-port", str(port), "--port", "0", "--hub", "bench" + uuid.uuid4().hex[:10]]
    sidecar = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        _wait_for_port(port, sidecar)
        durable = _measure(f"localhost:{port}", runs)
    finally:
        terminate(sidecar, 30)
    port = free_port()
    backend = create_test_backend(port=port)
    try:
        memory = _measure(f"localhost:{port}", runs)
    finally:
        backend.stop()
    return durable, memory


def _wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the sidecar exited with code {process.returncode} before serving")
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the sidecar did not serve on port {port} within {timeout:.0f} s")


def ratio(name: str, value: float, memory: dict[str, float]) -> float:
    """How many times slower the sidecar is (a throughput's ratio is turned round to say the same)."""
    other = memory[name]
    if "at once" in name:
        return other / value if value else float("inf")
    return value / other if other else float("inf")
