"""A workflow's orchestrator: agent-framework's superstep loop, made durable.

Each superstep: the messages sent in the previous one go through the workflow's own edge runners
(`routing.py`), and every resulting delivery becomes one durable task, all awaited together:
- a non-agent executor: activity `dafx-{workflow}-{executor}` (`step.py`), which returns what the
  handler sent, yielded, requested and changed in shared state;
- an agent executor: a `run` call to entity `dafx-{workflow}-{executor}` keyed by the workflow's
  session key (the conversation is the entity's, exactly once per call like every agent turn);
- a sub-workflow: child orchestration `dafx-{sub}` with id `{instance}~{executor}~{ordinal}`.
Results are applied in delivery order at the superstep's end (shared state changes, then the
messages for the next superstep), as agent-framework commits state at superstep boundaries. When
nothing is left to deliver and human-input requests are open, the instance waits durably for
their external events (named by request id; no timer unless the app sets one), and a response
becomes the `RESPONSE` message agent-framework's `@response_handler` expects.

Custom status, which the status route and the TUI read: `{"superstep", "state", "pendingRequests",
"executors"}` (`state`: running, waiting, completed). The instance's output is what executors
yielded: one value, or a list when several were yielded (plain JSON; a child orchestration
returns them encoded for its parent).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
from agent_framework import (
    AgentExecutor,
    AgentExecutorRequest,
    AgentExecutorResponse,
    AgentResponse,
    Executor,
    Message,
    Workflow,
    WorkflowExecutor,
    normalize_messages,
)
from agent_framework._workflows._const import INTERNAL_SOURCE_ID
from agent_framework._workflows._runner_context import MessageType, WorkflowMessage
from azure.durable_functions.models.Task import TaskState

from ..orchestration import OrchestrationAgent
from ..session import validate_key
from .codec import CodecError, _resolve, convert_input, decode, encode, plain
from .routing import Delivery, Router
from .step import DELETED, payload_of, request_event

SUB_SEPARATOR = "~"


def function_name(workflow_name: str, executor_id: str | None = None) -> str:
    """Microsoft's names: `dafx-{workflow}` for the orchestrator, `dafx-{workflow}-{executor}` for
    an executor's activity or an agent executor's entity."""
    return f"dafx-{workflow_name}" if executor_id is None else f"dafx-{workflow_name}-{executor_id}"


def scoped_agent_name(workflow_name: str, executor_id: str) -> str:
    """The agent name of a workflow's agent executor (its entity is `dafx-` + this)."""
    return f"{workflow_name}-{executor_id}"


def session_key_for(instance_id: str) -> str:
    """The session key agent executors of one workflow instance share: the instance id, or a hash
    of it when it holds characters session keys refuse."""
    try:
        return validate_key(instance_id)
    except ValueError:
        return hashlib.sha256(instance_id.encode("utf-8")).hexdigest()[:32]


PREVIEW_CHARS = 200
"""An executor input is kept in the custom status's timeline up to this many characters of JSON
(Azure caps a custom status at 16 KB; the full input is in the activity's history)."""


def preview(value: Any) -> Any:
    shown = plain(value)
    text = json.dumps(shown)
    return shown if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def _transcript(messages: list[Message]) -> str:
    return "\n\n".join(m.text for m in messages if m.text)


class WorkflowFailed(Exception):
    """An executor of the workflow raised; the message names it."""


class WorkflowRun:
    """One replay of one workflow instance (a fresh object per orchestrator call)."""

    def __init__(
        self,
        context: df.DurableOrchestrationContext,
        workflow: Workflow,
        name: str,
        sub_names: dict[str, str],
        request_timeout: timedelta | None,
    ) -> None:
        self.context = context
        self.workflow = workflow
        self.name = name
        self.sub_names = sub_names
        self.request_timeout = request_timeout
        self.router = Router(workflow)
        self.state: dict[str, Any] = {}
        self.outputs: list[Any] = []
        self.pending: dict[str, dict[str, Any]] = {}
        self.waits: dict[str, Any] = {}
        self.caches: dict[str, list[Message]] = {}
        self.ordinals: dict[str, int] = {}
        self.executor_state: dict[str, str] = {}
        self.children: list[str] = []
        self.timeline: list[dict[str, Any]] = []
        self.streams: dict[str, str] = {}
        """Agent executor -> the correlation id of its turn this superstep (its reply stream)."""
        self.superstep = 0
        self._answered: dict[str, dict[str, Any]] = {}
        self.session_key = session_key_for(context.instance_id)

    # -- the loop ------------------------------------------------------------------------------
    def run(self, raw: Any) -> Generator[Any, Any, Any]:
        start = self.workflow.start_executor_id
        data = decode(raw.get("input") if isinstance(raw, dict) else raw)
        messages = [WorkflowMessage(data=data, source_id=INTERNAL_SOURCE_ID(start), target_id=start)]
        while True:
            if not messages:
                if not self.pending:
                    break
                messages = yield from self._wait_for_response()
                continue
            if self.superstep >= self.workflow.max_iterations:
                raise WorkflowFailed(
                    f"workflow {self.name!r} did not converge after {self.workflow.max_iterations} supersteps"
                )
            self.superstep += 1
            deliveries = self.router.route(messages)
            messages = yield from self._superstep(deliveries)
        self._status("completed")
        return self.outputs

    def _superstep(self, deliveries: list[Delivery]) -> Generator[Any, Any, list[WorkflowMessage]]:
        tasks: list[Any] = []
        appliers: list[Callable[[Any], list[WorkflowMessage]]] = []
        ran: list[Delivery] = []
        for delivery in deliveries:
            self.executor_state[delivery.target] = "running"
            executor = self.workflow.executors[delivery.target]
            if isinstance(executor, AgentExecutor):
                planned = self._agent_task(executor, delivery)
            elif isinstance(executor, WorkflowExecutor):
                planned = self._sub_workflow_task(executor, delivery)
            else:
                planned = self._activity_task(executor, delivery)
            if planned is None:
                self.executor_state[delivery.target] = "completed"
                continue
            tasks.append(planned[0])
            appliers.append(planned[1])
            ran.append(delivery)
        self.timeline.append(
            {
                "superstep": self.superstep,
                "executors": [
                    {"id": d.target, "input": preview(d.message.data)}
                    | ({"turn": self.streams.pop(d.target)} if d.target in self.streams else {})
                    for d in ran
                ],
            }
        )
        self._status("running")
        if not tasks:
            return []
        try:
            results = yield self.context.task_all(tasks)
        except Exception as exc:
            raise WorkflowFailed(self._failure(ran, tasks, exc)) from None
        sent: list[WorkflowMessage] = []
        for apply, result in zip(appliers, results, strict=True):
            sent.extend(apply(result))
        return sent

    def _failure(self, ran: list[Delivery], tasks: list[Any], exc: Exception) -> str:
        text = str(exc)
        for delivery, task in zip(ran, tasks, strict=True):
            if getattr(task, "state", None) == TaskState.FAILED:
                self.executor_state[delivery.target] = "failed"
                self._status("failed")
                return f"executor {delivery.target!r} of workflow {self.name!r} failed: {text}"
        return f"workflow {self.name!r} failed in superstep {self.superstep}: {text}"

    # -- the three kinds of executor -------------------------------------------------------------
    def _activity_task(self, executor: Executor, delivery: Delivery) -> tuple[Any, Callable[[Any], list]]:
        message = delivery.message
        request = None
        if message.type == MessageType.RESPONSE and message.original_request_info_event is not None:
            request = self._answered.pop(message.original_request_info_event.request_id, None)
        payload = payload_of(message, delivery.source_ids, self.state, request)
        payload["workflow"] = self.name
        payload["instanceId"] = self.context.instance_id
        task = self.context.call_activity(function_name(self.name, executor.id), payload)

        def apply(result: dict[str, Any]) -> list[WorkflowMessage]:
            self.executor_state[executor.id] = "completed"
            for key, value in (result.get("state") or {}).items():
                if value == DELETED:
                    self.state.pop(key, None)
                else:
                    self.state[key] = value
            self.outputs.extend(decode(o) for o in result.get("outputs") or [])
            for record in result.get("requests") or []:
                self.pending[record["requestId"]] = record
            return [
                WorkflowMessage(data=decode(s["message"]), source_id=executor.id, target_id=s.get("targetId"))
                for s in result.get("sent") or []
            ]

        return task, apply

    def _agent_task(self, executor: AgentExecutor, delivery: Delivery) -> tuple[Any, Callable] | None:
        data = delivery.message.data
        cache = self.caches.setdefault(executor.id, [])
        if isinstance(data, AgentExecutorRequest):
            cache.extend(data.messages)
            if not data.should_respond:
                return None
        elif isinstance(data, AgentExecutorResponse):
            mode = getattr(executor, "_context_mode", "full")
            if mode == "last_agent":
                cache.extend(data.agent_response.messages)
            elif mode == "custom":
                cache.extend(executor._context_filter(data.full_conversation))  # type: ignore[misc]
            else:
                cache.extend(data.full_conversation)
        else:
            cache.extend(normalize_messages(data))  # type: ignore[arg-type]
        text = _transcript(cache) or "please continue."
        agent = OrchestrationAgent(
            self.context, scoped_agent_name(self.name, executor.id), stream_events=True
        )
        task = agent.run(text, session=self.session_key)
        self.streams[executor.id] = task.correlation_id
        conversation = list(cache)
        cache.clear()

        def apply(response: AgentResponse) -> list[WorkflowMessage]:
            self.executor_state[executor.id] = "completed"
            if self.workflow._output_designation.classify(executor.id) == "output":
                self.outputs.append(response)
            full = [*conversation, *response.messages]
            reply = AgentExecutorResponse(executor.id, response, full_conversation=full)
            return [WorkflowMessage(data=reply, source_id=executor.id)]

        return task, apply

    def _sub_workflow_task(self, executor: WorkflowExecutor, delivery: Delivery) -> tuple[Any, Callable]:
        ordinal = self.ordinals.get(executor.id, 0)
        self.ordinals[executor.id] = ordinal + 1
        child_id = SUB_SEPARATOR.join((self.context.instance_id, executor.id, str(ordinal)))
        child = self.sub_names[executor.id]
        self.children.append(child_id)
        task = self.context.call_sub_orchestrator(
            function_name(child), {"input": encode(delivery.message.data), "sub": True}, child_id
        )

        def apply(result: Any) -> list[WorkflowMessage]:
            self.executor_state[executor.id] = "completed"
            self.children.remove(child_id)
            outputs = [decode(o) for o in result or []]
            if executor.allow_direct_output:
                self.outputs.extend(outputs)
                return []
            return [WorkflowMessage(data=o, source_id=executor.id) for o in outputs]

        return task, apply

    # -- human input -----------------------------------------------------------------------------
    def _wait_for_response(self) -> Generator[Any, Any, list[WorkflowMessage]]:
        """Wait until one open request is answered; its answer is the next superstep's message."""
        for request_id in self.pending:
            if request_id not in self.waits:
                self.waits[request_id] = self.context.wait_for_external_event(request_id)
        self._status("waiting")
        waits = list(self.waits.values())
        timer = None
        if self.request_timeout is not None:
            timer = self.context.create_timer(self.context.current_utc_datetime + self.request_timeout)
            waits.append(timer)
        winner = yield self.context.task_any(waits)
        if timer is not None:
            if winner is timer:
                open_ids = ", ".join(sorted(self.pending))
                raise WorkflowFailed(
                    f"workflow {self.name!r}: no response to request(s) {open_ids} "
                    f"within {self.request_timeout}"
                )
            timer.cancel()
        request_id = next(rid for rid, task in self.waits.items() if task is winner)
        del self.waits[request_id]
        record = self.pending[request_id]
        try:
            answer = convert_input(winner.result, [_resolve(record["responseType"])])
        except CodecError:
            # Raised past the respond route (which checks the body) with data that does not fit:
            # the request stays open and a new wait takes the next event of that name.
            return []
        del self.pending[request_id]
        self._answered[request_id] = record
        self.timeline.append({"answered": request_id})
        event = request_event(record)
        return [
            WorkflowMessage(
                data=answer,
                source_id=INTERNAL_SOURCE_ID(record["sourceExecutor"]),
                target_id=record["sourceExecutor"],
                type=MessageType.RESPONSE,
                original_request_info_event=event,
            )
        ]

    def _status(self, state: str) -> None:
        self.context.set_custom_status(
            {
                "superstep": self.superstep,
                "state": state,
                "pendingRequests": [
                    {**record, "requestData": plain(decode(record["requestData"]))}
                    for record in self.pending.values()
                ],
                "executors": dict(self.executor_state),
                "subWorkflows": list(self.children),
                "timeline": self.timeline,
            }
        )


def orchestrator_for(
    workflow: Workflow, name: str, sub_names: dict[str, str], request_timeout: timedelta | None
) -> Callable[[df.DurableOrchestrationContext], Generator[Any, Any, Any]]:
    """The orchestrator function body registered as `dafx-{name}`."""

    def orchestrator(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
        raw = context.get_input()
        run = WorkflowRun(context, workflow, name, sub_names, request_timeout)
        outputs = yield from run.run(raw)
        if isinstance(raw, dict) and raw.get("sub"):
            return [encode(o) for o in outputs]
        shown = [plain(o) for o in outputs]
        if not shown:
            return None
        return shown[0] if len(shown) == 1 else shown

    return orchestrator
