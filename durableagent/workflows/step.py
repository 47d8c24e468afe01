"""One non-agent executor handling one message: the body of a workflow's activity functions.

The activity gets what the orchestrator's router decided (target, sources, the message, and for a
human's answer the request it answers) plus the workflow's shared state as committed at the start
of the superstep, runs the executor through agent-framework's own `Executor.execute` with an
in-process runner context, and returns what the handler did: messages sent (with their explicit
targets), outputs yielded, human-input requests raised, shared-state changes, and the events it
emitted. Nothing is stored here; the orchestrator records the result in its history, so a host
killed mid-activity runs the activity again and a finished one is never run twice by replay.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

from agent_framework import Executor, Workflow, WorkflowEvent
from agent_framework._workflows._runner_context import InProcRunnerContext, MessageType, WorkflowMessage
from agent_framework._workflows._state import State, _DeleteSentinel

from .codec import CodecError, _resolve, _type_key, decode, encode, plain

DELETED = {"$deleted": True}
CURRENT_RUN: ContextVar[tuple[str, str] | None] = ContextVar("durableagent_workflow_run", default=None)
"""(workflow name, instance id) while an executor runs in an activity: what `WorkflowHitlContext`
needs to build the URLs a person answers at."""


def request_record(event: WorkflowEvent[Any]) -> dict[str, Any]:
    """A human-input request as the orchestrator keeps it (and the status route shows it)."""
    response_type = event.response_type
    if not isinstance(response_type, type):
        raise CodecError(
            f"request_info from {event.source_executor_id!r}: response_type must be a class, "
            f"got {response_type!r}"
        )
    return {
        "requestId": event.request_id,
        "sourceExecutor": event.source_executor_id,
        "requestData": encode(event.data),
        "requestType": _type_key(type(event.data)),
        "responseType": _type_key(response_type),
    }


def request_event(record: dict[str, Any]) -> WorkflowEvent[Any]:
    """The agent-framework event `request_record` was made from, for the response handler."""
    return WorkflowEvent.request_info(
        request_id=record["requestId"],
        source_executor_id=record["sourceExecutor"],
        request_data=decode(record["requestData"]),
        response_type=_resolve(record["responseType"]),
    )


def message_of(payload: dict[str, Any]) -> WorkflowMessage:
    request = payload.get("request")
    return WorkflowMessage(
        data=decode(payload["message"]),
        source_id=payload["sourceId"],
        target_id=payload.get("targetId"),
        type=MessageType.RESPONSE if request else MessageType.STANDARD,
        original_request_info_event=request_event(request) if request else None,
    )


def payload_of(message: WorkflowMessage, source_ids: list[str], state: dict[str, Any], request: Any) -> dict:
    """The activity input for one delivery (`state` is already encoded)."""
    return {
        "message": encode(message.data),
        "sourceId": message.source_id,
        "targetId": message.target_id,
        "sourceIds": source_ids,
        "request": request,
        "state": state,
    }


async def run_step(workflow: Workflow, executor: Executor, payload: dict[str, Any]) -> dict[str, Any]:
    """Run `executor` on the payload's message; the JSON result the orchestrator applies."""
    state = State()
    state.import_state({key: decode(value) for key, value in payload.get("state", {}).items()})
    context = InProcRunnerContext()
    context.set_yield_output_classifier(workflow._output_designation.classify)
    token = CURRENT_RUN.set((payload.get("workflow", workflow.name or ""), payload.get("instanceId", "")))
    try:
        await executor.execute(message_of(payload), list(payload["sourceIds"]), state, context)
    finally:
        CURRENT_RUN.reset(token)
    sent = [
        {"message": encode(m.data), "targetId": m.target_id}
        for batch in (await context.drain_messages()).values()
        for m in batch
    ]
    outputs: list[Any] = []
    requests: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    for event in await context.drain_events():
        if event.type == "output":
            outputs.append(encode(event.data))
        elif event.type == "request_info":
            requests.append(request_record(event))
        elif event.type not in ("executor_invoked", "executor_completed"):
            events.append({"type": str(event.type), "data": plain(event.data)})
    changes = {
        key: DELETED if value is _DeleteSentinel else encode(value) for key, value in state._pending.items()
    }
    return {"sent": sent, "outputs": outputs, "requests": requests, "state": changes, "events": events}
