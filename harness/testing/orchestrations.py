"""Orchestrations from a test: start instances, wait for a status, raise events, read output and history.

Everything goes through the Durable instance HTTP API with `harness.client.SyncAgentClient`, as the
CLI and the TUI do, so the same test runs against the local host, `func` or a deployed app. A wait
that times out raises `OrchestrationTimeout` (an `AssertionError`, so a test fails on it) with the
last status and the end of the history: what one needs to tell a slow orchestration from a stuck one.

`harness.client` is imported where it is used: it loads durableagent's state types and with them the
agent framework, which a test run that never touches an orchestration should not pay for.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from harness.formatting import format_value, timeline

if TYPE_CHECKING:
    from harness.client import SyncAgentClient

__all__ = ["DEFAULT_ORCHESTRATION_TIMEOUT", "OrchestrationRun", "OrchestrationTimeout", "Orchestrations"]

_ANY: Any = object()
DEFAULT_ORCHESTRATION_TIMEOUT = 30.0


class OrchestrationTimeout(AssertionError):
    """An instance did not reach the awaited state in time (or finished without reaching it)."""


def _describe_status(status: dict[str, Any]) -> str:
    """The last status seen, in a few lines, for a failing test's message."""
    lines = [f"runtimeStatus={status.get('runtimeStatus')!r}"]
    for key in ("customStatus", "output"):
        if status.get(key) is not None:
            lines.append(f"{key}={format_value(status[key], 300)}")
    rows = timeline(status.get("historyEvents"))
    if rows:
        lines.append("history (newest last): " + "; ".join(f"{r.kind} {r.title}" for r in rows[-8:]))
    return "\n  ".join(lines)


class OrchestrationRun:
    """One started instance: wait for states, raise events, read status, output and history."""

    def __init__(self, client: SyncAgentClient, instance_id: str, timeout: float, interval: float) -> None:
        self.client = client
        self.id = instance_id
        self.timeout = timeout
        self.interval = interval
        self.last: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"OrchestrationRun({self.id!r}, {self.last.get('runtimeStatus', 'not read yet')})"

    def status(self, history: bool = True) -> dict[str, Any]:
        """The instance's status now (with ``historyEvents`` by default)."""
        from harness.client import ClientError

        status = self.client.instance(self.id, history=history)
        if status is None:
            raise ClientError(f"no instance {self.id!r}", status=404)
        self.last = status
        return status

    @property
    def output(self) -> Any:
        """``output`` of the last status read (a Failed instance's output is its error text)."""
        return self.last.get("output")

    @property
    def history(self) -> list[dict[str, Any]]:
        """``historyEvents`` of the last status read (oldest first)."""
        return list(self.last.get("historyEvents") or [])

    def history_types(self) -> list[str]:
        """The ``EventType`` of each history event of the last status read, e.g. to assert an order."""
        return [str(event.get("EventType")) for event in self.history]

    def wait_until(
        self,
        predicate: Callable[[dict[str, Any]], bool],
        timeout: float | None = None,
        what: str = "condition",
    ) -> dict[str, Any]:
        """Poll (with history) until ``predicate(status)``; fail the test with the last status if late."""
        from harness.client import InstanceTimeout

        limit = self.timeout if timeout is None else timeout
        try:
            self.last = self.client.wait(
                self.id, until=predicate, timeout=limit, interval=self.interval, history=True, describe=what
            )
        except InstanceTimeout as exc:
            self.last = exc.last
            raise OrchestrationTimeout(f"{exc}\n  {_describe_status(exc.last)}") from None
        return self.last

    def wait(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the instance is Completed, Failed or Terminated; returns that status."""
        from harness.client import is_finished

        return self.wait_until(is_finished, timeout, "to finish")

    def wait_for(
        self,
        *,
        status: str | Sequence[str] | None = None,
        custom_status: Any = _ANY,
        event: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Wait until every given condition holds.

        ``status``: a runtime status or several; ``custom_status``: a value to equal, or a callable
        taking the custom status; ``event``: a history ``EventType`` (e.g. ``"TimerCreated"``) or the
        name of a raised event that must appear in the history.
        """
        wanted = {status} if isinstance(status, str) else set(status or ())

        def matches(current: dict[str, Any]) -> bool:
            if wanted and current.get("runtimeStatus") not in wanted:
                return False
            if custom_status is not _ANY:
                value = current.get("customStatus")
                ok = custom_status(value) if callable(custom_status) else value == custom_status
                if not ok:
                    return False
            if event is not None:
                events = current.get("historyEvents") or []
                if not any(e.get("EventType") == event or e.get("Name") == event for e in events):
                    return False
            return True

        parts = [f"status in {sorted(wanted)}" if wanted else "", f"event {event!r}" if event else ""]
        if custom_status is not _ANY:
            parts.append(
                "custom status " + ("to match" if callable(custom_status) else f"== {custom_status!r}")
            )
        return self.wait_until(
            matches, timeout, "for " + (" and ".join(p for p in parts if p) or "any status")
        )

    def wait_for_idle(self, quiet: float = 0.5, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the instance is Running and its status has not changed for ``quiet`` seconds.

        The Durable API does not say what an instance waits for; an instance that stopped changing is
        (usually) waiting for an external event or a timer. Raising an event before the wait starts is
        fine too: events are buffered until the orchestrator asks for them.
        """
        seen: dict[str, Any] = {"key": None, "since": 0.0}

        def idle(current: dict[str, Any]) -> bool:
            key = (
                current.get("runtimeStatus"),
                current.get("lastUpdatedTime"),
                len(current.get("historyEvents") or []),
            )
            now = time.monotonic()
            if key != seen["key"]:
                seen["key"], seen["since"] = key, now
            return current.get("runtimeStatus") == "Running" and now - seen["since"] >= quiet

        return self.wait_until(idle, timeout, f"to be Running and unchanged for {quiet:g} s")

    def raise_event(self, name: str, data: Any = None) -> None:
        """Send the external event ``name`` with JSON ``data``."""
        self.client.raise_event(self.id, name, data)

    def terminate(self, reason: str | None = None) -> None:
        """Terminate the instance (asynchronous; ``wait()`` then sees Terminated)."""
        self.client.terminate(self.id, reason)

    def purge(self) -> None:
        """Delete the instance and its history."""
        self.client.purge(self.id)


class Orchestrations:
    """The ``orchestration`` fixture: start instances and get ``OrchestrationRun`` handles."""

    def __init__(
        self,
        client: SyncAgentClient,
        timeout: float = DEFAULT_ORCHESTRATION_TIMEOUT,
        interval: float = 0.1,
        id_prefix: str = "",
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.interval = interval
        self.id_prefix = id_prefix
        self.started: list[OrchestrationRun] = []

    def start(self, orchestrator: str, input: Any = None, instance_id: str | None = None) -> OrchestrationRun:
        """Start ``orchestrator`` with JSON ``input`` (default id: this test's name plus a random part)."""
        chosen = instance_id or f"{self.id_prefix}{uuid.uuid4().hex[:12]}"
        started = self.client.start(orchestrator, input, chosen)
        run = OrchestrationRun(self.client, str(started.get("id") or chosen), self.timeout, self.interval)
        self.started.append(run)
        return run

    def run(self, orchestrator: str, input: Any = None, timeout: float | None = None) -> OrchestrationRun:
        """Start and wait until it finishes; ``run.last`` is the final status."""
        run = self.start(orchestrator, input)
        run.wait(timeout)
        return run

    def get(self, instance_id: str) -> OrchestrationRun:
        """A handle on an instance started elsewhere (e.g. by an HTTP trigger)."""
        return OrchestrationRun(self.client, instance_id, self.timeout, self.interval)

    def terminate_unfinished(self) -> None:
        """Terminate the instances this test started that still run (done after each test)."""
        terminate_unfinished(self.client, [run.id for run in self.started])


def terminate_unfinished(client: Any, instance_ids: Sequence[str]) -> None:
    """Terminate those of `instance_ids` that still run: what a test started and left behind (an
    orchestration's or a workflow's instance alike)."""
    from harness.client import ClientError, is_finished

    for instance_id in instance_ids:
        with contextlib.suppress(ClientError):
            status = client.instance(instance_id)
            if status is not None and not is_finished(status):
                client.terminate(instance_id, "test ended")
