"""Hosted workflows from a test: run one, get its events and output, answer what it asks a person.

`WorkflowRunner.run("shared_state", {...})` starts the workflow through its run route, follows the
status route's event stream to the `status` event and returns a `WorkflowRun` with `output`,
`events` and `status` (the status route's body). An approval is `run = runner.start(...)`,
`request = run.wait_for_request()`, `run.respond({"approved": True})`, `run.wait()`.

Everything goes through Microsoft's routes and the event stream with `harness.client`, like the
CLI and the TUI, so the same test runs against the local host, `func` or a deployed app. A wait
that times out raises `WorkflowTimeout` (an `AssertionError`) with the last status, what the
instance waits for and its last events: what one needs to tell a slow workflow from a stuck one.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

from harness.formatting import format_value
from harness.testing.orchestrations import terminate_unfinished
from harness.workflow_api import FINISHED, WorkflowEvent, describe_event, executor_states

if TYPE_CHECKING:
    from harness.client import SyncAgentClient

__all__ = ["DEFAULT_WORKFLOW_TIMEOUT", "WorkflowRun", "WorkflowRunner", "WorkflowTimeout"]

DEFAULT_WORKFLOW_TIMEOUT = 30.0


class WorkflowTimeout(AssertionError):
    """A workflow instance did not reach the awaited point in time."""


class WorkflowRun:
    """One started workflow instance: its events so far, its last status, and how to answer it."""

    def __init__(self, client: SyncAgentClient, name: str, instance_id: str, timeout: float) -> None:
        self.client = client
        self.name = name
        self.id = instance_id
        self.timeout = timeout
        self.events: list[WorkflowEvent] = []
        self.updates: list[WorkflowEvent] = []
        """`agent_update` events: agent executors' text and tool calls as they streamed."""
        self.status: dict[str, Any] = {}
        self._cursor: int | str = -1

    def __repr__(self) -> str:
        return f"WorkflowRun({self.name!r}, {self.id!r}, {self.runtime_status or 'not read yet'})"

    @property
    def runtime_status(self) -> str | None:
        return self.status.get("runtimeStatus")

    @property
    def output(self) -> Any:
        """The output of the last status read (None unless Completed)."""
        return self.status.get("output")

    @property
    def error(self) -> Any:
        """The error of the last status read (a Failed instance names the executor)."""
        return self.status.get("error")

    @property
    def executors(self) -> dict[str, str]:
        """Each executor's state in the last status read (`waiting`: it asked a person)."""
        return executor_states(self.status)

    @property
    def pending(self) -> list[dict[str, Any]]:
        """The open requests of the last status read (`pendingHumanInputRequests`)."""
        return list(self.status.get("pendingHumanInputRequests") or [])

    def streamed_text(self, executor: str) -> str:
        """The text an agent executor streamed (its `agent_update` text chunks, joined)."""
        return "".join(
            str(u.data.get("text") or "")
            for u in self.updates
            if u.data.get("executor") == executor and u.data.get("kind") == "text"
        )

    def kinds(self) -> list[str]:
        """The kind of each event so far (not the `updates`), e.g. to assert their order."""
        return [event.kind for event in self.events]

    def of(self, kind: str, executor: str | None = None) -> list[dict[str, Any]]:
        """The data of the events of `kind` (and of `executor`, for the executor events)."""
        return [
            event.data
            for event in self.events
            if event.kind == kind and (executor is None or event.data.get("executor") == executor)
        ]

    def read(self) -> dict[str, Any]:
        """The status route's answer now."""
        from harness.client import ClientError

        status = self.client.workflow_status(self.name, self.id)
        if status is None:
            raise ClientError(f"no instance {self.id!r} of workflow {self.name!r}", status=404)
        self.status = status
        return status

    def _timeout(self, what: str, limit: float) -> WorkflowTimeout:
        status = self.read()
        lines = [f"workflow {self.name!r} instance {self.id!r} did not {what} within {limit:g} s"]
        lines.append(f"runtimeStatus={status.get('runtimeStatus')!r} executors={self.executors}")
        for request in self.pending:
            lines.append(
                f"waits for a person: request {request.get('requestId')} from "
                f"{request.get('sourceExecutor')} ({request.get('responseType')}); "
                "answer with run.respond(...)"
            )
        for event in self.events[-6:]:
            line = describe_event(event, 200)
            lines.append(f"event {event.id} {event.kind}: {line.subject} {line.detail}".rstrip())
        return WorkflowTimeout("\n  ".join(lines))

    def wait(self, timeout: float | None = None) -> WorkflowRun:
        """Follow the events until the instance ends; then `status` is its final status."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        for event in self.client.workflow_events(self.name, self.id, after=self._cursor, until=deadline):
            self._cursor = event.cursor or self._cursor
            (self.events if event.numbered else self.updates).append(event)
        if not self.events or self.events[-1].kind != "status":
            raise self._timeout("end", limit)
        self.read()
        return self

    def wait_for_request(self, timeout: float | None = None) -> dict[str, Any]:
        """Wait until the instance asks a person; returns the first open request (with
        `requestId`, `requestData`, `responseSchema`, `respondUrl`)."""
        limit = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + limit
        interval = 0.05
        while True:
            status = self.read()
            if self.pending:
                return self.pending[0]
            if status.get("runtimeStatus") in FINISHED:
                raise WorkflowTimeout(
                    f"workflow {self.name!r} instance {self.id!r} ended {status.get('runtimeStatus')} "
                    f"without asking a person; output={format_value(status.get('output'), 200)} "
                    f"error={format_value(status.get('error'), 200)}"
                )
            if time.monotonic() >= deadline:
                raise self._timeout("ask a person", limit)
            time.sleep(min(interval, max(0.0, deadline - time.monotonic())))
            interval = min(interval * 1.5, 0.5)

    def respond(self, answer: Any, request_id: str | None = None) -> dict[str, Any]:
        """Answer an open request (default: the only one open, waited for) with JSON `answer`."""
        if request_id is None:
            self.wait_for_request()
            if len(self.pending) != 1:
                ids = ", ".join(str(r.get("requestId")) for r in self.pending)
                raise AssertionError(f"{len(self.pending)} requests are open ({ids}); name one as request_id")
            request_id = str(self.pending[0]["requestId"])
        return self.client.workflow_respond(self.name, self.id, request_id, answer)


class WorkflowRunner:
    """The `workflow_runner` fixture: start workflows on the host and get `WorkflowRun` handles."""

    def __init__(
        self, client: SyncAgentClient, timeout: float = DEFAULT_WORKFLOW_TIMEOUT, id_prefix: str = ""
    ) -> None:
        self.client = client
        self.timeout = timeout
        self.id_prefix = id_prefix
        self.started: list[WorkflowRun] = []

    def start(self, name: str, input: Any = "", run_id: str | None = None) -> WorkflowRun:
        """Start workflow `name` (a str is sent as text, anything else as JSON); default id: the
        test's name and a random part, so the instance is easy to find in the TUI."""
        chosen = run_id or f"{self.id_prefix}{uuid.uuid4().hex[:12]}"
        started = self.client.workflow_run(name, input, chosen)
        run = WorkflowRun(self.client, name, str(started["instanceId"]), self.timeout)
        self.started.append(run)
        return run

    def run(self, name: str, input: Any = "", timeout: float | None = None) -> WorkflowRun:
        """Start and follow to the end: `run.output`, `run.events`, `run.status`."""
        return self.start(name, input).wait(timeout)

    def get(self, name: str, instance_id: str) -> WorkflowRun:
        """A handle on an instance started elsewhere (by the CLI, another route)."""
        return WorkflowRun(self.client, name, instance_id, self.timeout)

    def terminate_unfinished(self) -> None:
        """Terminate the instances this test started that still run (done after each test)."""
        terminate_unfinished(self.client, [run.id for run in self.started])
