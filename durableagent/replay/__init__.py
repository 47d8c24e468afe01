"""Replaying recorded orchestration histories against orchestrator code as it is now, offline.

- `events.py`: DTFx history events (what the SDK's orchestrator handler replays).
- `episode.py`: one episode through the SDK's handler and the decisions it takes (the local host's
  engine runs every episode through it too).
- `recorded.py`: the history files people have (the Durable HTTP API's status with `historyEvents`,
  on Azure or the local host; a list of them; an export with raw histories) read into `RecordedRun`.
- `check.py`: the re-hosted replay and its first divergence.
- `app.py`: an app's orchestrators by name.

Used by `durableagent.testing` (pytest) and `python -m harness replay-check`; no storage, no network.
"""

from durableagent.replay.app import Orchestrators, by_name, orchestrators_of
from durableagent.replay.check import CheckResult, Divergence, check_run
from durableagent.replay.recorded import BadHistory, RecordedRun, load_runs, runs_from

__all__ = [
    "BadHistory",
    "CheckResult",
    "Divergence",
    "Orchestrators",
    "RecordedRun",
    "by_name",
    "check_run",
    "load_runs",
    "orchestrators_of",
    "runs_from",
]
