"""Testing durable agents and orchestrations without a test framework: the engine of the pytest plugin.

- `AppEnvironment` (`environment.py`): Azurite + a Functions host for one app, as a (sync or async)
  context manager, with `client`, `script` and `orchestrations`; `AppEnvironment.from_url(url)` for
  an app already running.
- `ChatScript` (`script.py`): the fake model's script file and the requests the fake recorded.
- `Orchestrations`, `OrchestrationRun`, `OrchestrationTimeout` (`orchestrations.py`): start, wait,
  raise events, read output and history through the Durable HTTP API.
- `ClockControl` (`clock.py`): the host's clock; moves a virtual one (`advance`, `to`, `sleep`).
- `WorkflowRunner`, `WorkflowRun`, `WorkflowTimeout` (`workflows.py`): run hosted workflows through
  their routes, get their events and output, answer their requests.
- `HostPool` (`hosts.py`): one host per app, started once, on one storage and one script.
- `unique_key` (`keys.py`): readable keys that never collide between tests.

Nothing here imports pytest; `harness/pytest_plugin.py` wraps these pieces in fixtures and markers.
"""

from harness.testing.clock import ClockControl
from harness.testing.environment import AppEnvironment
from harness.testing.hosts import HostPool
from harness.testing.keys import key_stem, unique_key
from harness.testing.orchestrations import (
    DEFAULT_ORCHESTRATION_TIMEOUT,
    OrchestrationRun,
    Orchestrations,
    OrchestrationTimeout,
)
from harness.testing.script import ChatScript, load_script, unused_message, write_script
from harness.testing.workflows import DEFAULT_WORKFLOW_TIMEOUT, WorkflowRun, WorkflowRunner, WorkflowTimeout

__all__ = [
    "DEFAULT_ORCHESTRATION_TIMEOUT",
    "DEFAULT_WORKFLOW_TIMEOUT",
    "AppEnvironment",
    "ChatScript",
    "ClockControl",
    "HostPool",
    "OrchestrationRun",
    "OrchestrationTimeout",
    "Orchestrations",
    "WorkflowRun",
    "WorkflowRunner",
    "WorkflowTimeout",
    "key_stem",
    "load_script",
    "unique_key",
    "unused_message",
    "write_script",
]
