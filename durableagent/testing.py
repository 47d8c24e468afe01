"""Testing orchestrators without a host: replay recorded histories, or run one against a script.

`replay(histories, app)` replays recorded histories (files, a folder of them, or parsed JSON; what
the Durable HTTP API serves, on Azure or the local host, or `python -m harness export` writes) against
the app's orchestrators as they are now, and fails with the first divergence: a project keeps a
folder of production histories and one test guards every code change against breaking the instances
in flight:

    def test_histories_still_replay():
        replay(Path(__file__).parent / "histories", app)

`run_orchestrator(app, name, input, activities=..., events=...)` runs one orchestrator through the
SDK's own handler, episode by episode as a host would, with activity results, sub-orchestration
results, entity answers and external events taken from a script, and timers firing when nothing else
can happen (on a clock of its own, so a one-day timer costs nothing). No storage, no network, no
activity code runs unless the script calls it.

Both drive the SDK through `durableagent.replay.episode`, the episode logic the local host runs.
"""

from __future__ import annotations

import json
import traceback
from collections import Counter, deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from durableagent.replay import (
    CheckResult,
    Orchestrators,
    by_name,
    check_run,
    load_runs,
    orchestrators_of,
    runs_from,
)
from durableagent.replay import events as h
from durableagent.replay.episode import Instance, Work, run_episode, with_cancellations

__all__ = [
    "MissingScript",
    "OrchestrationResult",
    "ReplayDivergence",
    "each_call",
    "replay",
    "run_orchestrator",
]

START = datetime(2026, 1, 1, tzinfo=UTC)
MAX_EPISODES = 10_000
MAX_DEPTH = 8  # sub-orchestrations run from the app, nested


class ReplayDivergence(AssertionError):
    """A recorded history the code no longer replays (pytest shows the diff)."""

    def __init__(self, results: list[CheckResult]) -> None:
        self.results = results
        lines = []
        for result in results:
            if result.divergence is None:
                continue
            d = result.divergence
            at = "at the end" if d.index is None else f"at history event {d.index}"
            lines += [
                f"{result.source} {result.orchestrator} ({result.instance_id}) {at}: {d.reason}",
                f"  - history: {d.recorded}",
                f"  + code:    {d.code}",
            ]
        super().__init__("\n".join(lines))


class MissingScript(AssertionError):
    """The orchestrator did something the script has no answer for."""


def _orchestrators(app: Any) -> Orchestrators:
    if isinstance(app, Mapping):
        return by_name(dict(app))
    if callable(app) and not hasattr(app, "get_functions"):
        return app  # already a lookup
    return orchestrators_of(app)


def replay(histories: Any, app: Any, *, raise_on_divergence: bool = True) -> list[CheckResult]:
    """Replay `histories` against `app`'s orchestrators; `ReplayDivergence` naming every history that
    diverges (unless `raise_on_divergence=False`: then look at the results).

    `histories`: a path to a history file or a folder of them (`*.json`, sorted), a list of paths, or
    parsed JSON (a status with `historyEvents`, a list of them, an export). `app`: the
    `FunctionApp` (`df.DFApp`, `AgentFunctionApp`), or a mapping of orchestrator names to handlers.
    A file that is no history raises `durableagent.replay.BadHistory` naming it.
    """
    orchestrators = _orchestrators(app)
    runs = []
    for source in _sources(histories):
        runs.extend(load_runs(source) if isinstance(source, Path) else runs_from(source, "history"))
    results = [check_run(run, orchestrators) for run in runs]
    if raise_on_divergence and not all(r.ok for r in results):
        raise ReplayDivergence(results)
    return results


def _sources(histories: Any) -> list[Any]:
    if isinstance(histories, str | Path):
        path = Path(histories)
        if path.is_dir():
            return sorted(path.glob("*.json"))
        return [path]
    if isinstance(histories, list) and histories and all(isinstance(p, str | Path) for p in histories):
        return [s for p in histories for s in _sources(p)]
    return [histories]


# -- running one orchestrator against a script ------------------------------------------------------
class each_call:  # noqa: N801 - reads as a function in a script: each_call("a", RuntimeError("b"))
    """Results handed out one per call, in order (a retry's attempts, a loop's iterations)."""

    def __init__(self, *results: Any) -> None:
        self.results = list(results)
        self.used = 0

    def next(self, what: str) -> Any:
        """The next result; `MissingScript` when all were used."""
        if self.used >= len(self.results):
            raise MissingScript(
                f"{what} was called {self.used + 1} times; the script has {len(self.results)}"
            )
        self.used += 1
        return self.results[self.used - 1]


@dataclass
class OrchestrationResult:
    """How a scripted run ended, and what the orchestrator did on the way."""

    name: str
    status: str  # Completed | Failed | Running (waiting for something the script does not give)
    output: Any = None
    error: str | None = None
    custom_status: Any = None
    calls: list[dict[str, Any]] = field(default_factory=list)  # what it scheduled, in order
    signals: list[dict[str, Any]] = field(default_factory=list)
    unused_events: list[tuple[str, Any]] = field(default_factory=list)
    history: list[dict[str, Any]] = field(default_factory=list)  # the last execution's, raw
    input_text: str | None = None
    instance_id: str = "test"
    executions: int = 1

    def activity_calls(self, name: str) -> list[Any]:
        """The inputs of every call of activity `name`, in order."""
        return [
            c["input"] for c in self.calls if c["kind"] == "activity" and c["name"].lower() == name.lower()
        ]

    def as_history(self) -> dict[str, Any]:
        """The run as a raw history `replay` (and `python -m harness replay-check`) takes: save it as
        a golden history, and later code changes are checked against it."""
        return {"name": self.name, "instanceId": self.instance_id, "history": self.history}


def run_orchestrator(
    app: Any,
    name: str,
    input: Any = None,  # noqa: A002 - the orchestrator's input, as start_new names it
    *,
    activities: Mapping[str, Any] | None = None,
    sub_orchestrators: Mapping[str, Any] | None = None,
    entities: Mapping[str, Any] | None = None,
    events: Iterable[tuple[str, Any]] = (),
    instance_id: str = "test",
    start: datetime = START,
    max_episodes: int = MAX_EPISODES,
) -> OrchestrationResult:
    """Run orchestrator `name` of `app` to its end (or until it waits for what the script lacks).

    A script entry is a value (the result), an exception instance (the task fails with it), a
    callable (called with the input, as the activity would be; what it returns or raises), or
    `each_call(...)` (one per call). `activities` and `sub_orchestrators` are keyed by function name;
    a sub-orchestrator not in the script runs from the app with the same script. `entities` is keyed
    by `"entity.operation"` or `"operation"` (a callable gets `(entity_id, input)`). `events` are
    raised in order, each once a wait for its name is open. Timers fire when nothing else is pending,
    the clock jumping to their time. `MissingScript` when the orchestrator calls what the script
    does not answer.
    """
    script = _Script(
        _orchestrators(app),
        _lowered(activities),
        _lowered(sub_orchestrators),
        _lowered(entities),
        max_episodes,
    )
    input_text = json.dumps(input) if input is not None else None
    return script.run(name, input_text, instance_id, list(events), start, depth=0)


def _lowered(mapping: Mapping[str, Any] | None) -> dict[str, Any]:
    return {key.lower(): value for key, value in (mapping or {}).items()}


@dataclass
class _Script:
    orchestrators: Orchestrators
    activities: dict[str, Any]
    subs: dict[str, Any]
    entities: dict[str, Any]
    max_episodes: int

    def run(
        self,
        name: str,
        input_text: str | None,
        instance_id: str,
        events: list[tuple[str, Any]],
        now: datetime,
        depth: int,
    ) -> OrchestrationResult:
        handle = self.orchestrators(name)
        if handle is None:
            raise MissingScript(f"the app has no orchestrator named {name!r}")
        result = OrchestrationResult(name, "Running", input_text=input_text, instance_id=instance_id)
        instance = Instance(instance_id, name, "1", input_text, None, [], 0)
        batch = [h.event(h.EXECUTION_STARTED, now, Name=name, Input=input_text, Version="")]
        ready: deque[dict[str, Any]] = deque()
        timers: dict[int, datetime] = {}
        delivered: Counter[str] = Counter()
        pending = list(events)
        for _ in range(self.max_episodes):
            decision = run_episode(handle, instance, batch, now)
            instance = replace(
                instance,
                history=[*with_cancellations(instance.history, decision.canceled_timers), *decision.events],
                actions_seen=decision.actions_seen,
            )
            result.history = instance.history
            if decision.custom_status[0]:
                result.custom_status = decision.custom_status[1]
            for task_id in decision.canceled_timers:
                timers.pop(task_id, None)
            for work in decision.work:
                self._start(work, instance, result, ready, timers, now, depth)
            if decision.status == "Failed":
                result.status, result.error = "Failed", str(decision.output)
                break
            if decision.status == "Completed":
                result.status, result.output = "Completed", decision.output
                break
            if decision.status == "ContinuedAsNew":
                result.executions += 1
                instance = Instance(
                    instance_id, name, str(result.executions), decision.continue_input, None, [], 0
                )
                batch = [
                    h.event(h.EXECUTION_STARTED, now, Name=name, Input=decision.continue_input, Version="")
                ]
                ready.clear()
                timers.clear()
                delivered.clear()
                continue
            waits = decision.waits
            event = next((e for e in pending if waits.get(e[0], 0) > delivered[e[0]]), None)
            if ready:
                batch = [ready.popleft()]
            elif event is not None:
                pending.remove(event)
                delivered[event[0]] += 1
                batch = [h.event(h.EVENT_RAISED, now, Name=event[0], Input=json.dumps(event[1]))]
            elif timers:
                task_id = min(timers, key=lambda t: timers[t])
                now = max(now, timers.pop(task_id))
                batch = [h.event(h.TIMER_FIRED, now, TimerId=task_id)]
            else:
                break  # waiting for something the script does not give
        else:
            raise MissingScript(f"orchestrator {name!r} ran {self.max_episodes} episodes without ending")
        result.unused_events = pending
        return result

    def _start(
        self,
        work: Work,
        instance: Instance,
        result: OrchestrationResult,
        ready: deque[dict[str, Any]],
        timers: dict[int, datetime],
        now: datetime,
        depth: int,
    ) -> None:
        """Answer one piece of scheduled work from the script (timers wait for their turn)."""
        value = h.json_or_text(work.input) if work.input is not None else None
        if work.kind == "timer":
            assert work.fire_at is not None
            timers[work.task_id] = work.fire_at
            result.calls.append({"kind": "timer", "fire_at": work.fire_at})
            return
        if work.kind == "signal":
            result.signals.append({"entity": work.target, "operation": work.name, "input": value})
            return
        result.calls.append(
            {"kind": {"call": "entity"}.get(work.kind, work.kind), "name": work.name, "input": value}
            | ({"entity": work.target} if work.kind == "call" else {})
        )
        if work.kind == "activity":
            ok, answer = _answer(self.activities, work.name.lower(), f"activity {work.name!r}", value)
            if ok:
                ready.append(
                    h.event(h.TASK_COMPLETED, now, TaskScheduledId=work.task_id, Result=json.dumps(answer))
                )
            else:
                reason, details = _failure(f"Activity function '{work.name}' failed", answer)
                ready.append(
                    h.event(h.TASK_FAILED, now, TaskScheduledId=work.task_id, Reason=reason, Details=details)
                )
        elif work.kind == "sub":
            ready.extend(self._child(work, now, depth))
        elif work.kind == "call":
            entity = work.target.split("@")[1] if work.target.count("@") == 2 else work.target
            key = f"{entity}.{work.name}".lower()
            table = (
                self.entities if key in self.entities else {key: self.entities.get(work.name.lower(), _NONE)}
            )
            ok, answer = _answer(table, key, f"entity operation {entity}.{work.name}", (work.target, value))
            payload = (
                {"result": json.dumps(answer)}
                if ok
                else {"result": json.dumps(str(answer)), "exceptionType": type(answer).__name__}
            )
            ready.append(h.event(h.EVENT_RAISED, now, Name=work.request_id, Input=json.dumps(payload)))
        else:
            reason = f"{work.name} is not supported by run_orchestrator"
            ready.append(h.event(h.TASK_FAILED, now, TaskScheduledId=work.task_id, Reason=reason, Details=""))

    def _child(self, work: Work, now: datetime, depth: int) -> list[dict[str, Any]]:
        value = h.json_or_text(work.input) if work.input is not None else None
        if work.name.lower() in self.subs:
            ok, answer = _answer(self.subs, work.name.lower(), f"sub-orchestrator {work.name!r}", value)
            if ok:
                return [
                    h.event(h.SUB_COMPLETED, now, TaskScheduledId=work.task_id, Result=json.dumps(answer))
                ]
            reason, details = _failure(f"Sub-orchestration '{work.name}' failed", answer)
            return [h.event(h.SUB_FAILED, now, TaskScheduledId=work.task_id, Reason=reason, Details=details)]
        if depth >= MAX_DEPTH:
            raise MissingScript(f"sub-orchestrations nest deeper than {MAX_DEPTH}: script {work.name!r}")
        child = self.run(work.name, work.input, work.target, [], now, depth + 1)
        if child.status == "Completed":
            return [
                h.event(h.SUB_COMPLETED, now, TaskScheduledId=work.task_id, Result=json.dumps(child.output))
            ]
        if child.status == "Failed":
            reason = f"Sub-orchestration '{work.name}' failed: {child.error}"
            return [h.event(h.SUB_FAILED, now, TaskScheduledId=work.task_id, Reason=reason, Details="")]
        return []  # the child waits for something the script does not give: so does the parent


_NONE = object()


def _answer(table: Mapping[str, Any], key: str, what: str, value: Any) -> tuple[bool, Any]:
    """(ok, result) or (False, exception) for one call, from the script."""
    entry = table.get(key, _NONE)
    if entry is _NONE:
        shown = json.dumps(value[1] if isinstance(value, tuple) else value, default=str)
        raise MissingScript(f"{what} was called with {shown} and the script has no result for it")
    if isinstance(entry, each_call):
        entry = entry.next(what)
    if isinstance(entry, BaseException):
        return False, entry
    if callable(entry):
        try:
            args = value if isinstance(value, tuple) else (value,)
            return True, entry(*args)
        except Exception as exc:  # the activity's (or entity's) own failure, as a host reports it
            return False, exc
    return True, entry


def _failure(prefix: str, exc: BaseException) -> tuple[str, str]:
    reason = f"{prefix}: {type(exc).__name__}: {exc}"
    return reason, "".join(traceback.format_exception(exc)).strip()
