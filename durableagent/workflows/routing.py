"""Which executor gets which message next: agent-framework's own edge runners, run inside the
orchestrator with every executor replaced by a recorder.

Why the real runners: single edges with conditions, fan-out with selection functions, fan-in
buffers that wait for every source, switch-case groups and `send_message(..., target_id=)` keep
exactly agent-framework's semantics (type checks through the executors' own `can_handle`), and
nothing here re-implements them. A recorder notes "deliver this message to that executor from these
sources" instead of running the executor; the orchestrator then runs each delivery as an activity,
an entity call or a child orchestration. The runners hold state (a fan-in's buffer) only in
memory: the orchestrator is replayed from history, so they are rebuilt by the same deliveries in
the same order on every replay.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from agent_framework import Executor, Workflow
from agent_framework._workflows._edge_runner import EdgeRunner, create_edge_runner
from agent_framework._workflows._runner_context import WorkflowMessage
from agent_framework._workflows._state import State

T = TypeVar("T")


@dataclass
class Delivery:
    """One executor invocation of a superstep: `message` (a `WorkflowMessage`) to `target`."""

    target: str
    source_ids: list[str]
    message: WorkflowMessage


class _Recorder:
    """Stands in for an executor in the edge runners: answers `can_handle` as the real executor
    does and records `execute` calls instead of running anything."""

    def __init__(self, executor: Executor, deliveries: list[Delivery]) -> None:
        self._executor = executor
        self._deliveries = deliveries
        self.id = executor.id

    def can_handle(self, message: WorkflowMessage) -> bool:
        return self._executor.can_handle(message)

    async def execute(self, message: Any, source_executor_ids: list[str], *_: Any, **__: Any) -> None:
        self._deliveries.append(Delivery(self.id, list(source_executor_ids), message))


_loop: asyncio.AbstractEventLoop | None = None
_loop_lock = threading.Lock()


def _routing_loop() -> asyncio.AbstractEventLoop:
    """One event loop on a daemon thread for the process, made on first use: orchestrator code runs
    with and without a running loop of its own (Azure's worker, the local host), and a loop per
    call would cost more than the routing it runs."""
    global _loop
    with _loop_lock:
        if _loop is None:
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="durableagent-routing", daemon=True).start()
            _loop = loop
        return _loop


def run_sync(make: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run the coroutine `make()` returns to its end from synchronous code, on the routing loop."""
    return asyncio.run_coroutine_threadsafe(make(), _routing_loop()).result()


class Router:
    """The edge runners of one workflow, for one replay of one orchestration."""

    def __init__(self, workflow: Workflow) -> None:
        self._deliveries: list[Delivery] = []
        recorders = {eid: _Recorder(ex, self._deliveries) for eid, ex in workflow.executors.items()}
        runners = [create_edge_runner(group, recorders) for group in workflow.edge_groups]  # type: ignore[arg-type]
        self._by_source: dict[str, list[EdgeRunner]] = {}
        for runner in runners:
            for source in runner._edge_group.source_executor_ids:
                self._by_source.setdefault(source, []).append(runner)
        self._state = State()

    def route(self, messages: Sequence[WorkflowMessage]) -> list[Delivery]:
        """The deliveries `messages` (in the order they were sent) cause, in a stable order."""
        self._deliveries.clear()
        run_sync(lambda: self._send_all(messages))
        return list(self._deliveries)

    async def _send_all(self, messages: Sequence[WorkflowMessage]) -> None:
        # One message at a time, each through its source's runners in registration order: the
        # recorded deliveries (and so the orchestration's history) come out in a stable order.
        for message in messages:
            for runner in self._by_source.get(message.source_id, ()):
                await runner.send_message(message, self._state, None)  # type: ignore[arg-type]
