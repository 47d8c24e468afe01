"""Rewind: a finished instance carries on from an earlier point of its history, with the app's code as
it is now (how a user tries a fix on the real failing case, imported from production or not).

`POST /runtime/webhooks/durabletask/instances/{id}/rewind` does what the extension's rewind does for a
Failed instance: the episode that failed is dropped, so what it answered (the failed activity, the
failed child) runs again. The local host's `toEvent=N` goes further back: the history is cut after
the last episode that ended before event N (the index in the stored history, as an export and
`replay-check` number it), whatever the instance's end.

The kept history is replayed first through the current code (`durableagent.replay`): a code that no
longer replays it is refused with the divergence (409), since carrying on would hand it results meant
for other calls. The instance then runs under a new execution id from the kept history: the work it
scheduled there and nothing completed is started again (as after a restart: `recovery.py`), and it
goes on like any instance. Only finished instances are rewound: a running one has work in flight
whose answers would land on the cut history.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from typing import TYPE_CHECKING

from durableagent.replay.check import replay_run
from durableagent.replay.recorded import run_from

from . import history as h

if TYPE_CHECKING:
    from .engine import OrchestrationEngine
    from .store import InstanceRecord


class RewindRefused(Exception):
    """A rewind that cannot be done: `status` is the HTTP status to answer with."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


def kept_history(history: list[dict], to_event: int | None) -> list[dict]:
    """The history a rewind keeps: up to the end of the last episode that ended before `to_event`, or
    (None) without the last episode."""
    if to_event is None:
        starts = [i for i, e in enumerate(history) if e["EventType"] == h.ORCHESTRATOR_STARTED]
        return history[: starts[-1]] if starts else []
    if not 0 <= to_event <= len(history):
        raise RewindRefused(f"toEvent must be from 0 to {len(history)} (the history's length)", 400)
    ends = [i for i, e in enumerate(history[:to_event]) if e["EventType"] == h.ORCHESTRATOR_COMPLETED]
    return history[: ends[-1] + 1] if ends else []


async def rewind(engine: OrchestrationEngine, iid: str, to_event: int | None) -> InstanceRecord:
    """Rewind instance `iid` (see the module docstring); `RewindRefused` says why not."""
    async with engine.lock(iid):
        record = await engine.store.read(iid)
        if record is None:
            raise RewindRefused(f"no instance with id {iid!r}", 404)
        if not record.terminal:
            raise RewindRefused(f"instance {iid!r} is {record.status}: terminate it first, then rewind", 409)
        if to_event is None and record.status != "Failed":
            raise RewindRefused(
                f"instance {iid!r} is {record.status}: only a Failed one is rewound without toEvent=N", 409
            )
        function = engine.orchestrator(record.name)
        if function is None:
            raise RewindRefused(f"orchestrator function {record.name!r} is not defined by this app", 404)
        kept = kept_history(record.history, to_event)
        new = replace(
            record,
            status="Running" if kept else "Pending",
            execution_id=uuid.uuid4().hex,
            history=kept,
            output=None,
            finishing=None,
            applied=frozenset(),
            actions_seen=0,
            waits={},
        )
        if kept and engine.remote is None:  # a remote worker replays it itself (and fails a divergence)
            run = run_from({"name": record.name, "instanceId": iid, "history": kept}, iid)
            result, state = replay_run(run, lambda name: o.fn if (o := engine.orchestrator(name)) else None)
            if state is None:
                assert result.divergence is not None
                d = result.divergence
                raise RewindRefused(
                    f"the current code no longer replays the history before event {to_event}: "
                    f"{d.reason} at history event {d.index} (history: {d.recorded}; code: {d.code})",
                    409,
                )
            new.actions_seen, new.waits = state.actions_seen, state.waits
        await engine.store.write(new, record)
        engine._forget_instance(iid)  # nothing of the finished execution may reach the new one
        if kept:
            await engine._recover(new, [])  # the kept history's unfinished work starts again
    engine.notify(iid)
    return new
