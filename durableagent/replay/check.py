"""Replay a recorded history against the orchestrator code as it is now, and find the first divergence.

The check re-hosts the instance offline: it drives the code through the local host's own episode
logic (`harness.host.orchestrations.replay.run_episode`, which calls the SDK's handler exactly as the
host does), feeding it what the history recorded happened (completions, timer firings, events,
entity answers) one event per episode, and compares what the code schedules with what the history
recorded it scheduled. No storage, no network, no activity runs: results come from the history.

An event per episode keeps every answer in the place the code can take it (the host's batching rules
are about what may be handed over together; one at a time is always valid), and the clock of each
episode is the recorded episode time (raw histories) or the recorded time the next scheduled thing
was scheduled at (served histories), so `current_utc_datetime`, timers and `new_uuid` see the times
they saw.

Divergences found: a different kind or name of activity / sub-orchestrator / entity operation, a
different input or entity, a different timer time, more actions than recorded (the code schedules
something the history does not have) or fewer (the history has a completion for something the code
never scheduled, or the code completes or waits where the history went on), and an exception the
history did not have.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from . import events as h
from .app import Orchestrators
from .episode import Decision, Instance, run_episode, with_cancellations
from .recorded import UNKNOWN, Incoming, RecordedRun, Scheduled, scheduled_from_raw

# Served histories stamp scheduling a few milliseconds after the episode began (on Azure), so their
# timer times are compared with this much slack; raw histories are compared exactly.
TIMER_SLACK = timedelta(seconds=1)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_EXECUTION = "replay-check"  # the execution id the re-hosted instance runs under


@dataclass
class Divergence:
    """Where the code stopped doing what the history recorded."""

    index: int | None  # the history event index in the file (None: at the end)
    reason: str  # what differs, in a few words
    recorded: str  # what the history recorded there
    code: str  # what the code does now

    def as_json(self) -> dict[str, Any]:
        """The `--json` form."""
        return {"event": self.index, "reason": self.reason, "history": self.recorded, "code": self.code}


@dataclass
class CheckResult:
    """One history's verdict."""

    source: str
    instance_id: str
    orchestrator: str
    divergence: Divergence | None = None
    episodes: int = 0

    @property
    def ok(self) -> bool:
        """Whether the code replays the history."""
        return self.divergence is None

    def as_json(self) -> dict[str, Any]:
        """The `--json` form."""
        return {
            "source": self.source,
            "instanceId": self.instance_id,
            "orchestrator": self.orchestrator,
            "ok": self.ok,
            "divergence": self.divergence.as_json() if self.divergence else None,
        }


class _Diverged(Exception):
    def __init__(self, divergence: Divergence) -> None:
        super().__init__(divergence.reason)
        self.divergence = divergence


@dataclass
class Replayed:
    """Where the code stands once it has replayed a whole history: the SDK actions it accounts for
    and its open waits per event name (what a host needs to carry on from that history)."""

    actions_seen: int
    waits: dict[str, int]


def check_run(run: RecordedRun, orchestrators: Orchestrators) -> CheckResult:
    """Replay `run` against the code `orchestrators` finds; the first divergence, or none."""
    return replay_run(run, orchestrators)[0]


def replay_run(run: RecordedRun, orchestrators: Orchestrators) -> tuple[CheckResult, Replayed | None]:
    """`check_run`, and where the code stands after the history (None when it diverged)."""
    result = CheckResult(run.source, run.instance_id, run.name)
    handle = orchestrators(run.name)
    if handle is None:
        result.divergence = Divergence(
            run.start_index,
            "orchestrator missing",
            f"orchestrator {run.name!r}",
            "no orchestrator of that name in the app",
        )
        return result, None
    replayer = _Replayer(run, handle)
    try:
        replayer.replay()
    except _Diverged as exc:
        result.divergence = exc.divergence
    result.episodes = replayer.episodes
    if result.divergence is not None:
        return result, None
    return result, Replayed(replayer.instance.actions_seen, dict(replayer.waits))


def _same(a: Any, b: Any) -> bool:
    return a is UNKNOWN or b is UNKNOWN or a == b


def _same_target(recorded: str | None, code: str | None, exact: bool) -> bool:
    if recorded is None or code is None or code.startswith(f"{_EXECUTION}:"):
        return True  # not recorded, or a child id the host makes up (`<execution>:<task id>`)
    if recorded == code:
        return True
    if exact or recorded.count("@") != 2 or code.count("@") != 2:
        return False
    # Served histories carry no episode times, so a key from `new_uuid()` cannot be reproduced:
    # the entity's name must match, its key only when it is not a UUID.
    _, r_name, r_key = recorded.split("@")
    _, c_name, c_key = code.split("@")
    return r_name == c_name and (r_key == c_key or bool(_UUID.match(r_key) and _UUID.match(c_key)))


class _Replayer:
    """The re-hosted instance: its rebuilt history, and what of the recording it has matched."""

    def __init__(self, run: RecordedRun, handle: Any) -> None:
        self.run = run
        self.handle = handle
        self.instance = Instance(
            run.instance_id, run.name, _EXECUTION, run.input_text, run.parent_instance_id, [], 0
        )
        self.unmatched: list[Scheduled] = list(run.scheduled)
        self.task_of: dict[Any, int] = {}  # recorded ref -> the code's task id
        self.code_items: dict[int, Scheduled] = {}  # the code's task id -> what it scheduled
        self.now = run.started_at or datetime.now().astimezone()
        self.episodes = 0
        self.waits: dict[str, int] = {}  # the code's waits for events, per name, after the last episode

    # -- the loop ----------------------------------------------------------------------------------
    def replay(self) -> None:
        started = h.event(
            h.EXECUTION_STARTED, self.now, Name=self.run.name, Input=self.run.input_text, Version=""
        )
        batch = [started]
        upcoming = list(self.run.incoming)
        at_index: int | None = self.run.start_index
        while True:
            decision = self._episode(batch)
            self.waits = decision.waits
            hidden_timers = self._compare(decision, at_index)
            self._outcome(decision, upcoming, at_index)
            if decision.status != "Running":
                return
            self.instance = replace(
                self.instance,
                history=[
                    *with_cancellations(self.instance.history, decision.canceled_timers),
                    *decision.events,
                ],
                actions_seen=decision.actions_seen,
            )
            if hidden_timers:  # a retry timer the history does not show: it fired, as it must have
                timer = hidden_timers[0]
                self.now = max(self.now, timer.fire_at or self.now)
                batch = [h.event(h.TIMER_FIRED, self.now, TimerId=timer.ref, FireAt=h.iso(self.now))]
                continue
            if not upcoming:
                self._ran_out()
                return
            incoming = upcoming.pop(0)
            if incoming.kind == "terminated":
                return
            if incoming.at is not None:
                self.now = max(self.now, incoming.at)
            batch = [self._event_for(incoming)]
            at_index = incoming.index

    def _episode(self, batch: list[dict[str, Any]]) -> Decision:
        """Run one episode; a served history's clock is taken from what it scheduled next."""
        self.episodes += 1
        decision = _run_episode(self.handle, self.instance, batch, self.now)
        if self.run.exact or all(item.retry_step for item in _new_items(decision)):
            return decision  # exact times, or nothing recorded to take the time from (a retry's own step)
        following = next((s for s in self.unmatched if not s.retry_step and s.at is not None), None)
        if following is not None and following.at is not None and following.at > self.now:
            self.now = following.at
            decision = _run_episode(self.handle, self.instance, batch, self.now)
        return decision

    # -- comparing ---------------------------------------------------------------------------------
    def _compare(self, decision: Decision, at_index: int | None) -> list[Scheduled]:
        """Match what the episode scheduled with the recording; the retry timers it does not show."""
        hidden: list[Scheduled] = []
        for item in _new_items(decision):
            self.code_items[int(item.ref)] = item
            found = self._match(item)
            if found is None and item.retry_step:
                if item.kind == "timer":
                    hidden.append(item)
                continue  # a retry's own step the history does not show (the local host hides timers)
            if found is None:
                raise _Diverged(self._more_than_recorded(item, at_index))
            self.task_of[found.ref] = int(item.ref)
        return hidden

    def _match(self, item: Scheduled) -> Scheduled | None:
        """The recorded item `item` is, from the next ones (ties in time: any of them); a
        `_Diverged` when the next one is the same kind of thing done differently."""
        if not self.unmatched:
            return None
        first = self.unmatched[0]
        group = [first] if self.run.exact else [s for s in self.unmatched if s.at == first.at]
        for candidate in group:
            # A retry's timer is the host's choice (its time is not the code's): in a raw history, the
            # timer recorded next is it (a served one is matched on its time, within the slack).
            retry_timer = self.run.exact and item.retry_step and item.kind == candidate.kind == "timer"
            if retry_timer or self._differences(candidate, item) == []:
                self.unmatched.remove(candidate)
                return candidate
        if item.retry_step:
            return None
        alike = next((c for c in group if c.kind == item.kind and c.name.lower() == item.name.lower()), None)
        if alike is None and first.kind == item.kind:
            alike = first
        if alike is not None:
            reason = ", ".join(self._differences(alike, item))
            raise _Diverged(Divergence(alike.index, reason, alike.describe(), item.describe()))
        raise _Diverged(
            Divergence(first.index, f"{item.kind} instead of {first.kind}", first.describe(), item.describe())
        )

    def _differences(self, recorded: Scheduled, code: Scheduled) -> list[str]:
        if recorded.kind != code.kind:
            return [f"{code.kind} instead of {recorded.kind}"]
        found = []
        if recorded.name.lower() != code.name.lower():
            found.append(f"different {'operation' if code.kind in ('call', 'signal') else 'name'}")
        if not _same_target(recorded.target, code.target, self.run.exact):
            found.append("different entity" if code.kind in ("call", "signal") else "different instance id")
        if not _same(recorded.input, code.input):
            found.append("different input")
        if code.kind == "timer" and recorded.fire_at and code.fire_at:
            slack = timedelta(0) if self.run.exact else TIMER_SLACK
            if abs(recorded.fire_at - code.fire_at) > slack:
                found.append("different timer time")
        return found

    def _more_than_recorded(self, item: Scheduled, at_index: int | None) -> Divergence:
        end = self.run.end
        recorded = f"the orchestration ended {end[0]}" if end else "nothing more scheduled"
        return Divergence(at_index, "more actions than recorded", recorded, item.describe())

    def _outcome(self, decision: Decision, upcoming: list[Incoming], at_index: int | None) -> None:
        """An end the history did not have (or not here): a divergence."""
        if decision.status == "Running":
            return
        end = self.run.end
        left = [s for s in self.unmatched if not s.retry_step]
        later = [i for i in upcoming if i.kind != "terminated"]
        if decision.status == "Failed":
            if end is not None and end[0] == "Failed" and not later and not left:
                return
            raise _Diverged(
                Divergence(
                    at_index,
                    "an exception the history did not have",
                    self._what_came_next(left, later),
                    f"raised: {_first_line(decision.output)}",
                )
            )
        if left or later:
            raise _Diverged(
                Divergence(
                    left[0].index if left else later[0].index,
                    "fewer actions than recorded",
                    self._what_came_next(left, later),
                    f"the orchestration {decision.status.lower()}",
                )
            )
        if end is not None and end[0] != decision.status:
            raise _Diverged(
                Divergence(
                    self.run.end_index,
                    f"ends {decision.status} instead of {end[0]}",
                    f"{end[0]}: {_first_line(end[1])}",
                    f"{decision.status}: {_first_line(decision.output)}",
                )
            )

    def _what_came_next(self, left: list[Scheduled], later: list[Incoming]) -> str:
        if left:
            return left[0].describe()
        if later:
            return _describe_incoming(later[0])
        end = self.run.end
        return f"the orchestration ended {end[0]}" if end else "the orchestration went on waiting"

    def _ran_out(self) -> None:
        """The recording is over and the code waits: fine unless the history has more."""
        left = [s for s in self.unmatched if not s.retry_step]
        if left:
            raise _Diverged(
                Divergence(left[0].index, "fewer actions than recorded", left[0].describe(), "not scheduled")
            )
        end = self.run.end
        if end is not None and end[0] in ("Completed", "Failed", "ContinuedAsNew"):
            raise _Diverged(
                Divergence(
                    self.run.end_index,
                    "still waiting where the history ended",
                    f"{end[0]}: {_first_line(end[1])}",
                    "the orchestration waits for more",
                )
            )

    # -- feeding -----------------------------------------------------------------------------------
    def _event_for(self, incoming: Incoming) -> dict[str, Any]:
        """The DTFx event the code's replay gets for what the history recorded happened."""
        if incoming.kind == "raised":
            return h.event(h.EVENT_RAISED, self.now, Name=incoming.name, Input=incoming.text)
        task_id = self.task_of.get(incoming.ref)
        if task_id is None:
            recorded = next((s for s in self.run.scheduled if s.ref == incoming.ref), None)
            raise _Diverged(
                Divergence(
                    recorded.index if recorded else incoming.index,
                    "fewer actions than recorded",
                    recorded.describe() if recorded else _describe_incoming(incoming),
                    "not scheduled",
                )
            )
        if incoming.kind == "fired":
            return h.event(h.TIMER_FIRED, self.now, TimerId=task_id)
        if incoming.kind == "answered":
            request = self.code_items[task_id].request_id
            return h.event(h.EVENT_RAISED, self.now, Name=request, Input=incoming.text)
        kind = self.code_items[task_id].kind
        if incoming.kind == "completed":
            done = h.SUB_COMPLETED if kind == "sub" else h.TASK_COMPLETED
            return h.event(done, self.now, TaskScheduledId=task_id, Result=incoming.text)
        failed = h.SUB_FAILED if kind == "sub" else h.TASK_FAILED
        return h.event(
            failed, self.now, TaskScheduledId=task_id, Reason=incoming.reason, Details=incoming.details
        )


def _run_episode(handle: Any, instance: Instance, batch: list[dict[str, Any]], now: datetime) -> Decision:
    """One episode: through the 1.x SDK's JSON handler, or by a handle that runs its own episodes
    (`run_episode(instance, batch, now)`: an app in another interpreter, on the 2.x SDK, whose
    orchestrator the harness drives over the Durable Task protocol). The comparing is the same."""
    own = getattr(handle, "run_episode", None)
    return own(instance, batch, now) if own is not None else run_episode(handle, instance, batch, now)


def _new_items(decision: Decision) -> list[Scheduled]:
    """What an episode scheduled, read as a recorded raw history is read."""
    return [s for e in decision.events if (s := scheduled_from_raw(e, -1, None)) is not None]


def _describe_incoming(incoming: Incoming) -> str:
    if incoming.kind == "raised":
        return f"event {incoming.name!r}"
    return f"{incoming.kind} (history event {incoming.index})"


def _first_line(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    line = (text or "").strip().splitlines()[0] if (text or "").strip() else ""
    return line if len(line) <= 160 else line[:159] + "…"
