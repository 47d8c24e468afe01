"""A workflow instance's events, derived from what Durable Functions already stores durably: the
orchestration's history and the orchestrator's custom status.

Why derived and not written: the orchestrator may not write anywhere (it is replayed), and the
history is exactly what survives a host SIGKILL. The custom status's `timeline` says which
executors ran in which superstep (and with what input, shortened) and when a person's answer was
taken; the history gives each executor's result (activity `TaskCompleted`/`TaskFailed`, the
agent entity's answer, a child orchestration's end) and each raised answer (`EventRaised`). Both
only grow, and events are emitted in timeline order, stopping at the first executor whose result
is not in yet, so the list of events only ever grows at its end: an event's position is its id,
and `Last-Event-ID: n` resumes after event n on any later read, also after a restart.

Event types (all `data` is plain JSON): `started` {input}; `superstep_started` {superstep};
`executor_invoked` {superstep, executor, input}; `executor_completed` {superstep, executor,
kind: activity|agent|workflow, sent, outputs, state, text, usage}; `executor_failed` {superstep,
executor, error}; `request_info` {requestId, sourceExecutor, requestData, responseType};
`request_answered` {requestId, response}; `output` {executor, data}; `superstep_completed`
{superstep}; and last `status` {runtimeStatus, output, error} once the instance has ended.
"""

from __future__ import annotations

from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any

from .codec import decode, plain
from .orchestrator import SUB_SEPARATOR, function_name

TERMINAL = ("Completed", "Failed", "Terminated", "Canceled")
Event = tuple[str, dict[str, Any]]


def _results_by_executor(name: str, instance_id: str, history: list[dict[str, Any]]) -> dict[str, deque]:
    """Each executor's results, in the order the history has them."""
    prefix = function_name(name) + "-"
    found: dict[str, deque] = defaultdict(deque)
    for event in history:
        kind = event.get("EventType")
        if kind in ("TaskCompleted", "TaskFailed"):
            fn = str(event.get("FunctionName") or "")
            if fn.startswith(prefix):
                found[fn[len(prefix) :].lower()].append(event)
        elif kind == "EntityCalled":
            entity = str(event.get("InstanceId") or "")  # @dafx-{wf}-{executor}@{key}
            head = f"@{prefix.lower()}"
            if entity.lower().startswith(head) and ("Result" in event or "Error" in event):
                found[entity[len(head) :].split("@", 1)[0].lower()].append(event)
        elif kind in ("SubOrchestrationInstanceCompleted", "SubOrchestrationInstanceFailed"):
            child = str(event.get("InstanceId") or "")
            if child.startswith(instance_id + SUB_SEPARATOR):
                found[child[len(instance_id) + 1 :].split(SUB_SEPARATOR, 1)[0].lower()].append(event)
    return found


def _completion(superstep: int, executor: str, event: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    kind = event["EventType"]
    base = {"superstep": superstep, "executor": executor}
    if kind == "TaskFailed" or kind == "SubOrchestrationInstanceFailed" or "Error" in event:
        error = event.get("Details") or event.get("Reason") or event.get("Error")
        return [("executor_failed", {**base, "error": plain(error)})]
    if kind == "EntityCalled":
        result = event.get("Result") or {}
        text = result.get("response") if isinstance(result, dict) else str(result)
        usage = result.get("usage") if isinstance(result, dict) else None
        return [("executor_completed", {**base, "kind": "agent", "text": text, "usage": usage})]
    result = event.get("Result")
    if kind == "SubOrchestrationInstanceCompleted":
        outputs = [plain(decode(o)) for o in result or []] if isinstance(result, list) else [plain(result)]
        return [("executor_completed", {**base, "kind": "workflow", "outputs": outputs})]
    result = result if isinstance(result, dict) else {}
    outputs = [plain(decode(o)) for o in result.get("outputs") or []]
    events: list[tuple[str, dict[str, Any]]] = [
        (
            "executor_completed",
            {
                **base,
                "kind": "activity",
                "sent": [plain(decode(s.get("message"))) for s in result.get("sent") or []],
                "outputs": outputs,
                "state": sorted((result.get("state") or {}).keys()),
            },
        )
    ]
    for record in result.get("requests") or []:
        events.append(
            (
                "request_info",
                {
                    "requestId": record.get("requestId"),
                    "sourceExecutor": record.get("sourceExecutor"),
                    "requestData": plain(decode(record.get("requestData"))),
                    "responseType": str(record.get("responseType", "")).split(":", 1)[-1],
                },
            )
        )
    events.extend(("output", {"executor": executor, "data": data}) for data in outputs)
    return events


@dataclass
class OpenTurn:
    """An agent executor's turn that has started and not ended: where its chunks are streamed."""

    number: int
    """The number of its `executor_invoked` event."""
    executor: str
    correlation_id: str


def derive(name: str, status: dict[str, Any], open_turns: list[OpenTurn] | None = None) -> list[Event]:
    """The instance's events so far, from its status with history and outputs (Durable HTTP API
    shape: `runtimeStatus`, `customStatus`, `historyEvents`, `input`, `output`). Agent turns still
    running are appended to `open_turns` when it is given."""
    instance_id = str(status.get("instanceId") or "")
    history = status.get("historyEvents") or []
    custom = status.get("customStatus") if isinstance(status.get("customStatus"), dict) else {}
    started = next((e for e in history if e.get("EventType") == "ExecutionStarted"), None)
    if started is None:
        return []
    raw_input = started.get("Input")
    shown_input = raw_input.get("input") if isinstance(raw_input, dict) else raw_input
    events: list[tuple[str, dict[str, Any]]] = [
        ("started", {"instanceId": instance_id, "input": plain(decode(shown_input))})
    ]
    results = _results_by_executor(name, instance_id, history)
    raised = {e.get("Name"): e for e in history if e.get("EventType") == "EventRaised"}
    runtime = status.get("runtimeStatus")
    ended = runtime in TERMINAL
    complete, broken = True, False
    for entry in custom.get("timeline") or []:
        if "answered" in entry:
            answer = raised.get(entry["answered"], {})
            events.append(
                ("request_answered", {"requestId": entry["answered"], "response": answer.get("Input")})
            )
            continue
        superstep = int(entry.get("superstep", 0))
        events.append(("superstep_started", {"superstep": superstep}))
        ran = entry.get("executors") or []
        invoked: dict[str, int] = {}
        for executor in ran:
            invoked[executor["id"]] = len(events)
            events.append(
                (
                    "executor_invoked",
                    {"superstep": superstep, "executor": executor["id"], "input": executor.get("input")},
                )
            )
        for position, executor in enumerate(ran):
            queue = results.get(executor["id"].lower())
            if not queue:
                if ended:  # a failed superstep: its other executors never report
                    continue
                complete = False
                if open_turns is not None:
                    open_turns.extend(
                        OpenTurn(invoked[waiting["id"]], waiting["id"], waiting["turn"])
                        for waiting in ran[position:]
                        if waiting.get("turn") and not results.get(waiting["id"].lower())
                    )
                break
            done = _completion(superstep, executor["id"], queue.popleft())
            broken = broken or done[0][0] == "executor_failed"
            events.extend(done)
        if not complete or broken:
            break
        events.append(("superstep_completed", {"superstep": superstep}))
    if ended:
        failed = runtime == "Failed"
        events.append(
            (
                "status",
                {
                    "runtimeStatus": runtime,
                    "output": None if failed else status.get("output"),
                    "error": status.get("output") if failed else None,
                },
            )
        )
    return events
