"""The replay check for the command line: the checker itself is the library's (`durableagent.replay`,
usable without the harness); this adds an app's orchestrators from its folder (`app.py`), as
`python -m harness replay-check --app DIR` (`harness/cli/replay.py`) needs."""

from durableagent.replay import (
    BadHistory,
    CheckResult,
    Divergence,
    RecordedRun,
    check_run,
    load_runs,
    runs_from,
)
from harness.replay.app import folder_orchestrators

__all__ = [
    "BadHistory",
    "CheckResult",
    "Divergence",
    "RecordedRun",
    "check_run",
    "folder_orchestrators",
    "load_runs",
    "runs_from",
]
