"""The seam where the engine runs orchestrator and activity code that is not in this process.

By default the engine runs an app's orchestrators through the Durable SDK's JSON protocol and its
activities as plain functions, both in-process (`replay.run_episode`, `dispatch._call_activity`).
A `RemoteExecutor` replaces both: the engine hands it an episode (the committed history and the new
events, in the host's own DTFx form) or an activity, and awaits a `Decision` or a result; the
executor decides how the code runs (the sidecar hands work items to a worker connected over gRPC).
Everything else (the inbox, the one commit per episode, dispatch, timers, recovery after a restart,
the hub lease) stays the engine's, so both kinds of app get the same promises.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from .replay import Decision, Work
from .store import InstanceRecord


class ActivityFailed(Exception):
    """A remote activity failed: `reason` and `details` go into the TaskFailed event, `fields`
    (e.g. the protocol's own failure details) ride along on it."""

    def __init__(self, reason: str, details: str = "", **fields: Any) -> None:
        super().__init__(reason)
        self.reason = reason
        self.details = details
        self.fields = fields


class RemoteExecutor(Protocol):
    """Runs episodes and activities somewhere else (see the module docstring)."""

    # True when the code receiving episodes buffers external events that no wait has asked for yet
    # (the durabletask workers do), so the engine hands every external event over at once instead
    # of holding it until a wait for its name is open (what the 1.x SDK needs).
    buffers_events: bool

    def orchestrator_name(self, name: str) -> str | None:
        """The orchestrator's name as stored, or None when it is not known (no such orchestrator)."""
        ...

    async def decide(self, record: InstanceRecord, events: list[dict[str, Any]], now: datetime) -> Decision:
        """One episode of `record` over the new `events` (the ExecutionStarted first, for a new one)."""
        ...

    async def activity(self, iid: str, execution: str, work: Work) -> str | None:
        """Run one activity; its result as JSON text, or ActivityFailed."""
        ...
