"""A durabletask worker in a process of its own (to SIGKILL it mid activity).

`python worker_proc.py ADDRESS FOLDER`: serves `two_steps` (activity `step` twice). Each call of
`step` writes `FOLDER/<input>-<pid>` before it works; with `BLOCK_STEP=<input>` in the environment,
that step never returns (the process is killed while it runs).
"""

from __future__ import annotations

import os
import sys
import threading
from pathlib import Path
from typing import Any

from durabletask import task, worker

FOLDER = Path(sys.argv[2])


def step(ctx: task.ActivityContext, name: str) -> str:
    (FOLDER / f"{name}-{os.getpid()}").write_text("called")
    if os.environ.get("BLOCK_STEP") == name:
        threading.Event().wait()
    return f"done {name}"


def two_steps(ctx: task.OrchestrationContext, _: Any) -> Any:
    first = yield ctx.call_activity(step, input="first")
    second = yield ctx.call_activity(step, input="second")
    return [first, second]


if __name__ == "__main__":
    running = worker.TaskHubGrpcWorker(host_address=sys.argv[1])
    running.add_orchestrator(two_steps)
    running.add_activity(step)
    running.start()
    print("worker started", flush=True)
    threading.Event().wait()
