"""One orchestration episode: history in, the SDK's orchestrator handler, decisions out.

Pure (no storage, no clock reads but the `now` it is given), so the replay rules are unit-tested on their
own, and shared: the local host's engine runs every episode through `run_episode`
(`harness/host/orchestrations/`), and so do the offline replay check and the test helpers
(`durableagent.replay`, `durableagent.testing`). The rules follow what the SDK's handler expects (see the
orchestration protocol notes):
- task ids come from a counter that starts at 0 each execution; every event that takes one is
  written with `EventId` = the id, so the counter is the number of such events in the history;
- actions are cumulative: the new ones are the flattened list past the count already seen;
- a retry (`call_*_with_retry`) hides a timer id after each failed attempt and an attempt id after
  each retry timer, so a batch ends at the first retry-related event;
- an external event is handed to the SDK only once a wait for its name is open (the SDK buffers an
  early event in one slot per name and hands it to every later wait of that name). Events beyond the
  waits known to be open (`held`: a loop of waits opens the next one only once the previous one is
  answered) are tried in the same episode, after the others: the run is kept only if the SDK had an
  open wait for each of them (it buffered none) and the orchestrator runs on or completes; otherwise
  the episode runs again without them. So 1,000 events at a loop of waits take a few episodes.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import azure.functions as func
from azure.durable_functions import DurableOrchestrationContext, Orchestrator
from azure.durable_functions.models.actions import ActionType

from . import events as h

SCHEMA = {"upperSchemaVersion": 1, "upperSchemaVersionNew": 2}
OUT_OF_PROC = "\n\n$OutOfProcData$:"
# Events that take a task id (the SDK's counter).
_ID_EVENTS = (h.TASK_SCHEDULED, h.TIMER_CREATED, h.SUB_CREATED, h.EVENT_SENT)
REQUEST_NAMESPACE = uuid.UUID("5c1bd6ae-6a5e-4d36-9c1f-1b7f1c0a8e3d")


@dataclass
class Work:
    """Something an episode asks the host to do once the episode is committed."""

    kind: str  # activity | timer | sub | call | signal | http
    task_id: int
    name: str = ""
    input: str | None = None
    fire_at: datetime | None = None
    target: str = ""  # a child instance id, or an entity instance id `@name@key`
    request_id: str = ""


@dataclass
class Decision:
    """What an episode decided."""

    status: str  # Running | Completed | Failed | ContinuedAsNew
    events: list[dict[str, Any]]  # to append to the stored history
    work: list[Work] = field(default_factory=list)
    canceled_timers: list[int] = field(default_factory=list)
    output: Any = None  # JSON value; the error message when Failed
    custom_status: tuple[bool, Any] = (False, None)  # (present, value)
    continue_input: str | None = None
    actions_seen: int = 0
    waits: dict[str, int] = field(default_factory=dict)  # wait actions per event name, in total
    held_taken: int = 0  # how many of the `held` events the episode took (the leading ones)
    # External events a continue-as-new hands to the next execution (durabletask's save_events).
    carryover: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Instance:
    """What an episode reads of an instance."""

    instance_id: str
    name: str
    execution_id: str
    input: str | None
    parent_instance_id: str | None
    history: list[dict[str, Any]]
    actions_seen: int


def next_task_id(history: list[dict[str, Any]]) -> int:
    """The SDK's next task id for this execution."""
    return sum(1 for item in history if item["EventType"] in _ID_EVENTS)


def request_id(instance: Instance, task_id: int) -> str:
    """A deterministic id for an entity request: re-sending it after a crash is recognisable."""
    return str(uuid.uuid5(REQUEST_NAMESPACE, f"{instance.instance_id}|{instance.execution_id}|{task_id}"))


def child_instance_id(instance: Instance, task_id: int) -> str:
    """DTFx names an unnamed sub-orchestration `<parent execution id>:<sequence>`."""
    return f"{instance.execution_id}:{task_id}"


def _attempt(history: list[dict[str, Any]], task_id: int) -> dict[str, Any] | None:
    """The scheduling event of `task_id` when it is part of a retry (an attempt or a retry timer)."""
    for item in history:
        if item["EventType"] in _ID_EVENTS and item.get("EventId") == task_id and "RetryOf" in item:
            return item
    return None


def is_retry_event(history: list[dict[str, Any]], item: dict[str, Any]) -> bool:
    """A failed retry attempt or a fired retry timer: the episode after it takes a hidden id."""
    kind = item["EventType"]
    if kind in (h.TASK_FAILED, h.SUB_FAILED, h.TIMER_FIRED):
        key = h.COMPLETION_KEYS[kind]
        return _attempt(history, int(item[key])) is not None
    return False


# The events the SDK's replay reads (the rest only document what happened). Leaving the others out of
# what it is handed halves the events of a typical episode, and the SDK parses every event's
# timestamp with dateutil, which dominated long histories.
_REPLAYED = frozenset(
    {
        h.ORCHESTRATOR_STARTED,
        h.EXECUTION_STARTED,
        h.TASK_COMPLETED,
        h.TASK_FAILED,
        h.SUB_COMPLETED,
        h.SUB_FAILED,
        h.TIMER_FIRED,
        h.EVENT_RAISED,
    }
)


def _replayed(item: dict[str, Any]) -> bool:
    """Whether the SDK needs `item` (an entity call's EventSent re-keys its task by request id)."""
    return item["EventType"] in _REPLAYED or (item["EventType"] == h.EVENT_SENT and "RequestId" in item)


def build_context(instance: Instance, batch: list[dict[str, Any]], now: datetime) -> dict[str, Any]:
    """The JSON the Functions host hands an orchestrator: old events played, then this episode's."""
    played = [{**item, "IsPlayed": True} for item in instance.history if _replayed(item)]
    return {
        "history": [*played, h.event(h.ORCHESTRATOR_STARTED, now), *batch],
        "input": instance.input,
        "instanceId": instance.instance_id,
        "isReplaying": bool(played),
        "parentInstanceId": instance.parent_instance_id,
        **SCHEMA,
    }


def call_orchestrator(handle: Any, context: dict[str, Any]) -> tuple[dict[str, Any], str | None]:
    """Run the SDK's handler; returns (state, error). Both failure shapes count as errors."""
    try:
        raw = handle(func.OrchestrationContext(json.dumps(context)))
    except Exception as exc:  # the SDK reports an orchestrator failure by raising
        text = str(exc)
        if OUT_OF_PROC in text:
            head, _, tail = text.partition(OUT_OF_PROC)
            try:
                state = json.loads(tail)
            except ValueError:
                return {}, head or type(exc).__name__
            return state, str(state.get("error") or head or type(exc).__name__)
        return {}, f"{type(exc).__name__}: {text}" if text else type(exc).__name__
    state = json.loads(raw) if isinstance(raw, str | bytes) else raw
    if not isinstance(state, dict):
        return {}, f"orchestrator returned {type(state).__name__}, not a state object"
    return state, (str(state["error"]) if state.get("error") else None)


def call_watching_buffers(handle: Any, context: dict[str, Any]) -> tuple[dict[str, Any], set[str]] | None:
    """Run the SDK's handler as its own `handle` does, keeping its orchestration context so as to see
    which completions it buffered for lack of an open task (`deferred_tasks`); None when `handle` is
    not the SDK's handler or the run raised (the caller then runs the plain handler)."""
    function = getattr(handle, "orchestrator_function", None)
    if function is None:
        return None
    try:
        sdk_context = DurableOrchestrationContext.from_json(json.dumps(context))
        sdk_context._input_expected_type = getattr(handle, "_df_input_type", None)
        raw = Orchestrator(function).handle(sdk_context)
        state = json.loads(raw) if isinstance(raw, str | bytes) else raw
        buffered = {str(key) for key in getattr(sdk_context, "deferred_tasks", {})}
    except Exception:
        return None
    return (state, buffered) if isinstance(state, dict) else None


def run_episode(
    handle: Any,
    instance: Instance,
    batch: list[dict[str, Any]],
    now: datetime,
    held: list[dict[str, Any]] | None = None,
) -> Decision:
    """Run one episode of `instance` over the new events `batch` and decide what follows.

    `held` are external events whose wait may open while `batch` is applied; they are taken (after
    `batch`) only when the SDK had an open wait for each. An orchestrator that completes takes those
    up to its last wait (the SDK reads no event after the end); one that continues as new or fails
    takes none (the next execution must get them, or the failure must be the same as without them).
    """
    if held:
        watched = call_watching_buffers(handle, build_context(instance, [*batch, *held], now))
        if watched is not None:
            state, buffered = watched
            names = {str(item.get("Name")) for item in held}
            if not state.get("error") and not names & buffered:
                taken = _answered(instance, batch, held, state) if state.get("isDone") else held
                decision = _decide(instance, [*batch, *taken], now, state, None)
                if decision.status in ("Running", "Completed"):
                    decision.held_taken = len(taken)
                    return decision
    context = build_context(instance, batch, now)
    state, error = call_orchestrator(handle, context)
    return _decide(instance, batch, now, state, error)


def _answered(
    instance: Instance, batch: list[dict[str, Any]], held: list[dict[str, Any]], state: dict[str, Any]
) -> list[dict[str, Any]]:
    """The leading `held` events that the orchestrator's waits could have taken before it ended.

    None of `held` was buffered, so each one the SDK read answered a wait; one past the waits of its
    name was therefore never read (it came after the end), nor was anything after it.
    """
    open_waits: dict[str, int] = {}
    for action in h.flatten(state.get("actions") or []):
        if action.get("actionType") == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            name = str(action.get("externalEventName"))
            open_waits[name] = open_waits.get(name, 0) + 1
    for name in h.raised_names([*instance.history, *batch]):
        if name in open_waits:
            open_waits[name] -= 1
    taken: list[dict[str, Any]] = []
    for item in held:
        name = str(item.get("Name"))
        if open_waits.get(name, 0) <= 0:
            break
        open_waits[name] -= 1
        taken.append(item)
    return taken


def _decide(
    instance: Instance, batch: list[dict[str, Any]], now: datetime, state: dict[str, Any], error: str | None
) -> Decision:
    """The decision the SDK's `state` (after replaying `batch`) leads to."""
    flat = h.flatten(state.get("actions") or [])
    new_events: list[dict[str, Any]] = [h.event(h.ORCHESTRATOR_STARTED, now), *batch]
    decision = Decision(
        status="Running", events=new_events, actions_seen=max(len(flat), instance.actions_seen)
    )
    for action in flat:
        if action.get("actionType") == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            name = str(action.get("externalEventName"))
            decision.waits[name] = decision.waits.get(name, 0) + 1
    if "customStatus" in state:
        decision.custom_status = (True, state["customStatus"])
    seen_history = [*instance.history, *new_events]
    counter = next_task_id(instance.history)
    # Timers the orchestrator cancelled since (the flag flips on the same action).
    timers = {
        item.get("ActionIndex"): item
        for item in instance.history
        if item["EventType"] == h.TIMER_CREATED and not item.get("IsCanceled")
    }
    for index, action in enumerate(flat[: instance.actions_seen]):
        canceled = action.get("actionType") == ActionType.CREATE_TIMER and action.get("isCanceled")
        if canceled and index in timers:
            decision.canceled_timers.append(int(timers[index]["EventId"]))
    ended = error is not None or bool(state.get("isDone"))
    for index in range(instance.actions_seen, len(flat)):
        action = flat[index]
        kind = action.get("actionType")
        if kind == ActionType.WAIT_FOR_EXTERNAL_EVENT:
            continue  # keyed by event name, takes no id
        task_id = counter
        counter += 1
        if kind == ActionType.CONTINUE_AS_NEW:
            decision.continue_input = action.get("input")
            continue
        if error is not None:
            continue  # a failed episode starts nothing
        new_events.extend(_schedule(instance, action, index, task_id, now, decision))
    # A retry-related event ending the batch takes the hidden id after the visible actions.
    if batch and not ended and is_retry_event(seen_history, batch[-1]):
        new_events.extend(_retry_step(seen_history, batch[-1], counter, now, decision))
    if error is not None:
        decision.status = "Failed"
        decision.output = error
        decision.work = []
    elif state.get("isDone") and decision.continue_input is not None:
        decision.status = "ContinuedAsNew"
        decision.work = [w for w in decision.work if w.kind == "signal"]
    elif state.get("isDone"):
        decision.status = "Completed"
        decision.output = state.get("output")
        decision.work = [w for w in decision.work if w.kind == "signal"]
    new_events.append(h.event(h.ORCHESTRATOR_COMPLETED, now))
    return decision


def with_cancellations(history: list[dict[str, Any]], canceled: list[int]) -> list[dict[str, Any]]:
    """`history` with the timers an episode cancelled marked `IsCanceled` (new dicts for those)."""
    if not canceled:
        return history
    ids = set(canceled)
    return [
        {**item, "IsCanceled": True}
        if item["EventType"] == h.TIMER_CREATED and int(item["EventId"]) in ids
        else item
        for item in history
    ]


def _schedule(
    instance: Instance, action: dict[str, Any], index: int, task_id: int, now: datetime, decision: Decision
) -> list[dict[str, Any]]:
    """The history events and the work for one new action."""
    kind = action.get("actionType")
    retry = action.get("retryOptions")
    if kind in (ActionType.CALL_ACTIVITY, ActionType.CALL_ACTIVITY_WITH_RETRY):
        name = str(action.get("functionName"))
        extra = _retry_fields(task_id, 1, retry) if kind == ActionType.CALL_ACTIVITY_WITH_RETRY else {}
        decision.work.append(Work("activity", task_id, name, action.get("input")))
        return [h.event(h.TASK_SCHEDULED, now, task_id, Name=name, Input=action.get("input"), **extra)]
    if kind in (ActionType.CALL_SUB_ORCHESTRATOR, ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY):
        name = str(action.get("functionName"))
        child = action.get("instanceId") or child_instance_id(instance, task_id)
        with_retry = kind == ActionType.CALL_SUB_ORCHESTRATOR_WITH_RETRY
        extra = _retry_fields(task_id, 1, retry) if with_retry else {}
        decision.work.append(Work("sub", task_id, name, action.get("input"), target=child))
        return [
            h.event(
                h.SUB_CREATED, now, task_id, Name=name, Input=action.get("input"), InstanceId=child, **extra
            )
        ]
    if kind == ActionType.CREATE_TIMER:
        fire_at = h.parse_time(str(action.get("fireAt")))
        item = h.event(h.TIMER_CREATED, now, task_id, FireAt=h.iso(fire_at), ActionIndex=index)
        if action.get("isCanceled"):
            item["IsCanceled"] = True
        else:
            decision.work.append(Work("timer", task_id, fire_at=fire_at))
        return [item]
    if kind in (ActionType.CALL_ENTITY, ActionType.SIGNAL_ENTITY):
        target = str(action.get("instanceId"))
        operation = str(action.get("operation"))
        rid = request_id(instance, task_id)
        message = {"op": operation, "id": rid, "parent": instance.instance_id, "input": action.get("input")}
        if kind == ActionType.CALL_ENTITY:
            decision.work.append(
                Work("call", task_id, operation, action.get("input"), target=target, request_id=rid)
            )
            fields = {"RequestId": rid}
        else:
            message["signal"] = True
            decision.work.append(
                Work("signal", task_id, operation, action.get("input"), target=target, request_id=rid)
            )
            fields = {"SignalId": rid}  # the entity acknowledges it (not handed to the SDK)
        return [
            h.event(
                h.EVENT_SENT,
                now,
                task_id,
                Name=operation,
                InstanceId=target,
                Input=json.dumps(message),
                **fields,
            )
        ]
    if kind == ActionType.CALL_HTTP:
        decision.work.append(Work("http", task_id, "call_http"))
        return [h.event(h.TASK_SCHEDULED, now, task_id, Name="BuiltIn::HttpActivity")]
    # An action this host does not know: fail its task so the orchestrator hears of it.
    decision.work.append(Work("http", task_id, f"action type {kind}"))
    return [h.event(h.TASK_SCHEDULED, now, task_id, Name=f"action type {kind}")]


def _retry_fields(first_attempt: int, attempt: int, retry: Any) -> dict[str, Any]:
    options = retry if isinstance(retry, dict) else {}
    return {
        "RetryOf": first_attempt,
        "Attempt": attempt,
        "RetryOptions": {
            "firstRetryIntervalInMilliseconds": int(options.get("firstRetryIntervalInMilliseconds") or 0),
            "maxNumberOfAttempts": int(options.get("maxNumberOfAttempts") or 1),
        },
    }


def _retry_step(
    history: list[dict[str, Any]],
    item: dict[str, Any],
    task_id: int,
    now: datetime,
    decision: Decision,
) -> list[dict[str, Any]]:
    """The hidden step after a retry event: a retry timer after a failed attempt, the next attempt
    after a retry timer fired (none after the last attempt: the SDK then fails the task)."""
    kind = item["EventType"]
    origin = _attempt(history, int(item[h.COMPLETION_KEYS[kind]]))
    assert origin is not None
    options = origin["RetryOptions"]
    if kind in (h.TASK_FAILED, h.SUB_FAILED):
        fire_at = now + timedelta(milliseconds=options["firstRetryIntervalInMilliseconds"])
        decision.work.append(Work("timer", task_id, fire_at=fire_at))
        return [
            h.event(
                h.TIMER_CREATED,
                now,
                task_id,
                FireAt=h.iso(fire_at),
                RetryOf=origin["RetryOf"],
                Attempt=origin["Attempt"],
                RetryOptions=options,
                Retried=origin["EventType"],
                Name=origin.get("Name"),
                Input=origin.get("Input"),
                ChildId=origin.get("InstanceId"),
            )
        ]
    # A retry timer fired: the next attempt, unless that was the last one.
    attempt = int(origin["Attempt"]) + 1
    if attempt > int(options["maxNumberOfAttempts"]):
        return []
    fields = {"RetryOf": origin["RetryOf"], "Attempt": attempt, "RetryOptions": options}
    name = str(origin.get("Name"))
    if origin.get("Retried") == h.SUB_CREATED:
        child = origin.get("ChildId") or f"{origin['RetryOf']}"
        decision.work.append(Work("sub", task_id, name, origin.get("Input"), target=child))
        return [
            h.event(
                h.SUB_CREATED, now, task_id, Name=name, Input=origin.get("Input"), InstanceId=child, **fields
            )
        ]
    decision.work.append(Work("activity", task_id, name, origin.get("Input")))
    return [h.event(h.TASK_SCHEDULED, now, task_id, Name=name, Input=origin.get("Input"), **fields)]
