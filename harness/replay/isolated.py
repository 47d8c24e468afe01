"""`replay-check` of an app that runs in its own interpreter (Durable Functions 2.x on Python 3.13):
the same checker (`durableagent.replay.check`) drives each episode through the app's own process,
over the Durable Task protocol, as the local host runs it (`harness/host/isolated/`): the re-hosted
history and the episode's new events go in as an `OrchestratorRequest`, the 2.x SDK's handler replays
them, and its `OrchestratorResponse` comes back as the episode's decision to compare.

Nothing is stored and nothing runs but orchestrator code: activity results, events and timers come
from the history, as for 1.x apps. The app's process is started once per app and Python and kept
for the life of this process (a TUI checks again and again); it ends when this process does (its
stdin closes).
"""

from __future__ import annotations

import asyncio
import threading
from datetime import datetime
from pathlib import Path
from typing import Any

from durableagent.replay import Orchestrators
from durableagent.replay.episode import Decision, Instance

from ..host.isolated.index import remote_index
from ..host.isolated.interpreter import require_2x
from ..host.isolated.process import AppProcess
from ..host.isolated.work import AppWorkItems
from ..host.orchestrations.store import InstanceRecord

START_TIMEOUT = 180.0  # seconds for the app's process to load the app


class _AppRunner:
    """The app's process, on an event loop of its own in a daemon thread (the checker is synchronous)."""

    def __init__(self, python: str, app_dir: Path) -> None:
        self.loop = asyncio.new_event_loop()
        threading.Thread(target=self.loop.run_forever, daemon=True, name="replay-app").start()
        # The app's INFO lines (each replayed episode logs some) would bury the check's verdicts.
        self.process = AppProcess(python, app_dir, {"DURABLEAGENT_APP_LOG_LEVEL": "WARNING"})
        require_2x(self.call(self.process.start()), python)
        self.index = remote_index(self.process)
        self.work = AppWorkItems(self.process, self.index, None)

    def call(self, work: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(work, self.loop).result(START_TIMEOUT)


class IsolatedOrchestrator:
    """One orchestrator of the app, as the checker's handle: it runs its own episodes."""

    def __init__(self, runner: _AppRunner, name: str) -> None:
        self.runner = runner
        self.name = name

    def run_episode(self, instance: Instance, batch: list[dict[str, Any]], now: datetime) -> Decision:
        record = InstanceRecord(
            instance.instance_id,
            instance.name,
            "Running",
            instance.execution_id,
            instance.input,
            history=list(instance.history),
            parent=instance.parent_instance_id,
            actions_seen=instance.actions_seen,
        )
        return self.runner.call(self.runner.work.decide(record, list(batch), now))


_RUNNERS: dict[tuple[Path, str], _AppRunner] = {}


def isolated_orchestrators(app_dir: Path, python: str) -> Orchestrators:
    """The orchestrators of the app in `app_dir` run in `python`; AppLoadError when it cannot load."""
    key = (app_dir.resolve(), python)
    runner = _RUNNERS.get(key)
    if runner is None:
        runner = _RUNNERS[key] = _AppRunner(python, key[0])

    def lookup(name: str) -> IsolatedOrchestrator | None:
        found = runner.index.orchestrators.get(name.lower())
        return IsolatedOrchestrator(runner, found.name) if found is not None else None

    return lookup
