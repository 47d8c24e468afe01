"""One orchestration episode: history in, the SDK's orchestrator handler, decisions out.

The episode logic lives in `durableagent.replay.episode` (pure: no storage, no clock reads), shared
with the offline replay check (`python -m harness replay-check`, `durableagent.testing`), so the host
and the check drive the SDK one way. Re-exported here under the names the host's modules use.
"""

from __future__ import annotations

from durableagent.replay.episode import (
    OUT_OF_PROC,
    REQUEST_NAMESPACE,
    SCHEMA,
    Decision,
    Instance,
    Work,
    build_context,
    call_orchestrator,
    call_watching_buffers,
    child_instance_id,
    is_retry_event,
    next_task_id,
    request_id,
    run_episode,
    with_cancellations,
)

__all__ = [
    "OUT_OF_PROC",
    "REQUEST_NAMESPACE",
    "SCHEMA",
    "Decision",
    "Instance",
    "Work",
    "build_context",
    "call_orchestrator",
    "call_watching_buffers",
    "child_instance_id",
    "is_retry_event",
    "next_task_id",
    "request_id",
    "run_episode",
    "with_cancellations",
]
