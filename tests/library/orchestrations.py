"""Run an app's orchestrator functions through the Durable SDK's own handler, on hand-built history.

`run_episode` calls the registered orchestrator the way the Functions host does (context JSON in,
orchestrator state JSON out). `Driver` plays the host for whole orchestrations: it keeps the
history (OrchestratorStarted timestamps stay fixed, so `new_uuid` replays), numbers actions as
DTFx does, answers `call_entity` with EventSent + EventRaised after running the app's real entity
function with the entity JSON protocol, applies signals, and runs activities.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field
from typing import Any

CALL_ACTIVITY, CREATE_TIMER, WAIT_EVENT, CALL_ENTITY, SIGNAL_ENTITY, WHEN_ANY, WHEN_ALL = (
    0,
    5,
    6,
    7,
    9,
    11,
    12,
)


def event(event_type: int, *, timestamp: str = "2024-01-01T00:00:00.000Z", **fields: Any) -> dict[str, Any]:
    base = {"EventType": event_type, "EventId": -1, "IsPlayed": False, "Timestamp": timestamp}
    return {**base, **fields}


def orchestrator_started(timestamp: str = "2024-01-01T00:00:00.000Z") -> dict[str, Any]:
    return event(12, timestamp=timestamp)


def execution_started(name: str) -> dict[str, Any]:
    return event(0, Name=name, Input=None, Version="")


def event_sent(task_id: int, request_id: str) -> dict[str, Any]:
    return event(14, **{"EventId": task_id, "Input": json.dumps({"op": "run_agent", "id": request_id})})


def entity_response(request_id: str, result_text: str, *, error: bool = False) -> dict[str, Any]:
    payload: dict[str, Any] = {"result": result_text}
    if error:
        payload["exceptionType"] = "System.Exception"
    return event(15, Name=request_id, Input=json.dumps(payload))


# An app indexes its functions once (a second get_functions() call fails on duplicate names).
_FUNCTIONS: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def functions_of(app: Any, known: dict[str, Any] | None = None) -> dict[str, Any]:
    if app not in _FUNCTIONS:
        _FUNCTIONS[app] = (
            known if known is not None else {f.get_function_name(): f for f in app.get_functions()}
        )
    return _FUNCTIONS[app]


def orchestrator_handle(app: Any, name: str) -> Any:
    return functions_of(app)[name].get_user_function()


def run_episode(
    app: Any, name: str, history: list[dict[str, Any]], *, instance_id: str = "inst1", input_: Any = None
) -> dict[str, Any]:
    """One orchestrator invocation; a failure comes back as the state with its `error`."""
    context = {
        "history": history,
        "input": None if input_ is None else json.dumps(input_),
        "instanceId": instance_id,
        "isReplaying": False,
        "parentInstanceId": None,
        "upperSchemaVersion": 1,
        "upperSchemaVersionNew": 2,
    }
    try:
        return json.loads(orchestrator_handle(app, name)(json.dumps(context)))
    except Exception as exc:
        text = str(exc)
        marker = "\n\n$OutOfProcData$:"
        if marker not in text:
            raise
        return json.loads(text.split(marker, 1)[1])


def flatten(actions: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat: list[dict[str, Any]] = []
    for action in actions:
        if action["actionType"] in (WHEN_ANY, WHEN_ALL):
            flat.extend(flatten(action["compoundActions"]))
        else:
            flat.append(action)
    return flat


@dataclass
class Driver:
    """Plays the host for one orchestration instance until it finishes (or waits on nothing it knows)."""

    app: Any
    host: Any  # tests.library.conftest.DurableClientDouble: runs entity batches with the real protocol
    name: str
    instance_id: str = "inst1"
    input_: Any = None
    history: list[dict[str, Any]] = field(default_factory=list)
    seen: int = 0
    next_id: int = 0
    episodes: int = 0
    entity_calls: list[dict[str, Any]] = field(default_factory=list)
    activities: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, Any]] = field(default_factory=list)
    fire_timers: bool = False
    timers: dict[int, int] = field(default_factory=dict)  # open timer id -> index in the flat actions
    fired: list[int] = field(default_factory=list)
    custom_statuses: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        functions_of(self.app, self.host.functions)

    def _timestamp(self) -> str:
        return f"2024-01-01T00:{self.episodes // 60:02d}:{self.episodes % 60:02d}.000Z"

    def run(self, max_episodes: int = 20) -> dict[str, Any]:
        pending: list[dict[str, Any]] = [execution_started(self.name)]
        state: dict[str, Any] = {}
        while pending and self.episodes < max_episodes:
            self.history += [orchestrator_started(self._timestamp()), *pending]
            self.episodes += 1
            state = run_episode(
                self.app, self.name, self.history, instance_id=self.instance_id, input_=self.input_
            )
            if state.get("error") or state.get("isDone"):
                return state
            self.custom_statuses.append(state.get("customStatus"))
            flat = flatten(state["actions"][0])
            new, first = flat[self.seen :], self.seen
            self.seen = len(flat)
            self.timers = {t: i for t, i in self.timers.items() if not flat[i].get("isCanceled")}
            pending = []
            for index, action in enumerate(new, start=first):
                kind = action["actionType"]
                if kind == WAIT_EVENT:
                    continue
                task_id, self.next_id = self.next_id, self.next_id + 1
                if kind == CREATE_TIMER:
                    self.timers[task_id] = index
                    continue
                if kind == CALL_ENTITY:
                    request_id = f"req-{task_id}"
                    self.history.append(event_sent(task_id, request_id))
                    result = self._run_entity(action)
                    pending.append(entity_response(request_id, result["result"], error=result["isError"]))
                elif kind == SIGNAL_ENTITY:
                    self._run_entity(action)
                elif kind == CALL_ACTIVITY:
                    pending.append(self._run_activity(task_id, action))
                else:
                    raise AssertionError(f"the test driver does not handle action {action}")
            if not pending and self.events:
                name, payload = self.events.pop(0)
                pending.append(event(15, Name=name, Input=json.dumps(payload)))
            elif not pending and self.fire_timers and self.timers:
                timer_id = min(self.timers)
                del self.timers[timer_id]
                self.fired.append(timer_id)
                pending.append(event(11, TimerId=timer_id))
        return state

    def _run_entity(self, action: dict[str, Any]) -> dict[str, Any]:
        _, name, key = action["instanceId"].split("@", 2)
        operation_input = json.loads(action["input"])
        self.entity_calls.append(
            {"entity": name, "key": key, "operation": action["operation"], "input": operation_input}
        )
        output = self.host.run_batch(name, key, [(action["operation"], operation_input)])
        return output["results"][-1]

    def _run_activity(self, task_id: int, action: dict[str, Any]) -> dict[str, Any]:
        function = functions_of(self.app)[action["functionName"]]
        value = function.get_user_function()(**{function.get_trigger().name: json.loads(action["input"])})
        self.activities.setdefault(action["functionName"], []).append(json.loads(action["input"]))
        return event(5, TaskScheduledId=task_id, Result=json.dumps(value))
