"""The edge conversion alone (pure): failure details, retried task ids, a failed instance's state,
a critical section's messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from durabletask.internal import orchestrator_service_pb2 as pb

from harness.host.entities import locks
from harness.host.orchestrations import history as h
from harness.host.orchestrations.store import InstanceRecord
from harness.host.sidecar import convert

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def record(history: list[dict]) -> InstanceRecord:
    return InstanceRecord("i1", "orch", "Running", "e1", history=history, created=NOW)


def test_failure_details_from_a_reason() -> None:
    typed = convert.failure(None, "builtins.ValueError: boom")
    assert (typed.errorType, typed.errorMessage) == ("builtins.ValueError", "boom")
    worded = convert.failure(None, "Sub-orchestration 'x' failed: it broke")
    assert (worded.errorType, worded.errorMessage) == (
        "TaskFailedException",
        "Sub-orchestration 'x' failed: it broke",
    )
    kept = convert.failure({"errorType": "E", "errorMessage": "m", "stackTrace": "s"})
    assert (kept.errorType, kept.errorMessage, kept.stackTrace.value) == ("E", "m", "s")


def test_a_retried_task_gets_a_host_id_and_keeps_the_workers() -> None:
    history = [
        h.event(h.EXECUTION_STARTED, NOW, Name="orch", Input=None),
        h.event(h.TASK_SCHEDULED, NOW, 0, Name="act", Input=None),
        h.event(h.TASK_FAILED, NOW, TaskScheduledId=0, Reason="x: y", Details=""),
        h.event(h.TIMER_CREATED, NOW, 1, FireAt=h.iso(NOW)),
        h.event(h.TIMER_FIRED, NOW, TimerId=1, FireAt=h.iso(NOW)),
    ]
    again = pb.OrchestratorAction(id=0, scheduleTask=pb.ScheduleTaskAction(name="act"))
    decision = convert.decision(
        record(history), [h.event(h.ORCHESTRATOR_STARTED, NOW)], NOW, pb.OrchestratorResponse(actions=[again])
    )
    scheduled = [e for e in decision.events if e["EventType"] == h.TASK_SCHEDULED]
    assert [(e["EventId"], e["WorkerId"]) for e in scheduled] == [(convert.RETRY_IDS, 0)]
    assert [w.task_id for w in decision.work] == [convert.RETRY_IDS]
    done = h.event(h.TASK_COMPLETED, NOW, TaskScheduledId=convert.RETRY_IDS, Result="1")
    later = record([*history, *decision.events])
    events = convert.to_events([*later.history, done], later)
    assert [e.eventId for e in events if e.HasField("taskScheduled")] == [0, 0]
    assert events[-1].taskCompleted.taskScheduledId == 0  # the worker sees its own id


def test_a_failed_instance_shows_the_workers_failure() -> None:
    failed = record([])
    failed.status = "Failed"
    failed.output = json.dumps("Orchestrator function 'orch' failed: builtins.KeyError: 'k'")
    details = convert.state(failed, with_payloads=True).failureDetails
    assert (details.errorType, details.errorMessage) == ("builtins.KeyError", "'k'")


def test_a_critical_section_round_trips() -> None:
    """A lock request is a call to the set's first entity whose answer the worker reads as the grant;
    an unlock is an acknowledged signal; a failing instance still sends its unlocks."""
    section, target = "cs-1", "@counter@a"
    lock = pb.EntityLockRequestedEvent(criticalSectionId=section, lockSet=[target, "@counter@b"])
    response = pb.OrchestratorResponse(
        actions=[
            pb.OrchestratorAction(
                id=1, sendEntityMessage=pb.SendEntityMessageAction(entityLockRequested=lock)
            )
        ]
    )
    started = [h.event(h.ORCHESTRATOR_STARTED, NOW)]
    decided = convert.decision(record([]), started, NOW, response)
    assert [(w.kind, w.target, w.request_id) for w in decided.work] == [("call", target, section)]
    granted = h.event(h.EVENT_RAISED, NOW, Name=section, Input='{"result": "null"}')
    later = record(decided.events)
    events = convert.to_events([*later.history, granted], later)
    assert [list(e.entityLockRequested.lockSet) for e in events if e.HasField("entityLockRequested")] == [
        [target, "@counter@b"]
    ]
    assert events[-1].entityLockGranted.criticalSectionId == section
    unlock = pb.EntityUnlockSentEvent(criticalSectionId=section)
    unlock.targetInstanceId.value = target
    failed = pb.CompleteOrchestrationAction(orchestrationStatus=pb.ORCHESTRATION_STATUS_FAILED)
    response = pb.OrchestratorResponse(
        actions=[
            pb.OrchestratorAction(
                id=2, sendEntityMessage=pb.SendEntityMessageAction(entityUnlockSent=unlock)
            ),
            pb.OrchestratorAction(id=3, completeOrchestration=failed),
        ]
    )
    decided = convert.decision(later, started, NOW, response)
    assert decided.status == "Failed"
    assert [(w.kind, w.target) for w in decided.work] == [("signal", target)]
    assert locks.unreleased([*later.history, *decided.events]) == {}
    assert locks.unreleased(later.history) == {section: [target, "@counter@b"]}
