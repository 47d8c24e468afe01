"""Replay-checking orchestrator code against recorded histories, offline.

- `recorded.py`: the history files people have (the Durable HTTP API's status with `historyEvents`,
  on Azure or the local host; a list of them; an export) read into one neutral `RecordedRun`.
- `check.py`: the re-hosted replay through the SDK's own handler (the local host's episode logic),
  and the first divergence.
- `app.py`: an app's orchestrators, from its folder or its `FunctionApp` object.

`python -m harness replay-check` (`harness/cli/replay.py`) and `harness.testing.replay` use these.
"""

from harness.replay.app import app_orchestrators, folder_orchestrators
from harness.replay.check import CheckResult, Divergence, Orchestrators, by_name, check_run
from harness.replay.recorded import BadHistory, RecordedRun, load_runs, runs_from

__all__ = [
    "BadHistory",
    "CheckResult",
    "Divergence",
    "Orchestrators",
    "RecordedRun",
    "app_orchestrators",
    "by_name",
    "check_run",
    "folder_orchestrators",
    "load_runs",
    "runs_from",
]
