"""The replay engine on its own: real orchestrator functions through the SDK's handler, hand-made
completions, and the decisions (history events, work, outcome) it takes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import azure.durable_functions as df

from harness.host.orchestrations import history as h
from harness.host.orchestrations.replay import (
    Instance,
    next_task_id,
    request_id,
    run_episode,
    with_cancellations,
)

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def handle(fn):
    return df.Orchestrator.create(fn)


def started(name: str = "orch", input_text: str | None = None) -> dict:
    return h.event(h.EXECUTION_STARTED, T0, Name=name, Input=input_text, Version="")


def play(fn, events_per_episode, input_text=None):
    """Run episodes in order, each with its new events; returns the decisions and the instance."""
    instance = Instance("inst1", "orch", "exec1", input_text, None, [], 0)
    decisions = []
    for index, batch in enumerate(events_per_episode):
        now = T0 + timedelta(seconds=index)
        events = ([started(input_text=input_text)] if index == 0 else []) + batch
        decision = run_episode(handle(fn), instance, events, now)
        instance.history = [*with_cancellations(instance.history, decision.canceled_timers), *decision.events]
        instance.actions_seen = decision.actions_seen
        decisions.append(decision)
    return decisions, instance


def completed(task_id: int, value) -> dict:
    return h.event(h.TASK_COMPLETED, T0, TaskScheduledId=task_id, Result=json.dumps(value))


def failed(task_id: int, reason: str = "boom") -> dict:
    return h.event(h.TASK_FAILED, T0, TaskScheduledId=task_id, Reason=reason, Details="trace")


def fired(task_id: int) -> dict:
    return h.event(h.TIMER_FIRED, T0, TimerId=task_id)


def chain(context):
    first = yield context.call_activity("a", 1)
    second = yield context.call_activity("b", first)
    return [first, second]


def test_activities_get_sequential_ids_and_the_output_comes_at_the_end():
    decisions, instance = play(chain, [[], [completed(0, "x")], [completed(1, "y")]])
    assert [d.status for d in decisions] == ["Running", "Running", "Completed"]
    assert [(w.kind, w.task_id, w.name, w.input) for w in decisions[0].work] == [("activity", 0, "a", "1")]
    assert [(w.task_id, w.name, w.input) for w in decisions[1].work] == [(1, "b", '"x"')]
    assert decisions[2].output == ["x", "y"]
    assert next_task_id(instance.history) == 2
    kinds = [e["EventType"] for e in decisions[0].events]
    assert kinds == [h.ORCHESTRATOR_STARTED, h.EXECUTION_STARTED, h.TASK_SCHEDULED, h.ORCHESTRATOR_COMPLETED]


def retrying(context):
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1000, max_number_of_attempts=2)
    try:
        result = yield context.call_activity_with_retry("flaky", options, None)
    except Exception as exc:
        result = f"gave up: {str(exc).split(' ')[0]}"
    after = yield context.call_activity("next", None)
    return [result, after]


def test_retry_takes_hidden_timer_and_attempt_ids_and_one_more_timer_after_the_last_failure():
    decisions, _ = play(
        retrying, [[], [failed(0)], [fired(1)], [failed(2)], [fired(3)], [completed(4, "done")]]
    )
    timer = decisions[1].work[0]
    assert (timer.kind, timer.task_id) == ("timer", 1)
    assert timer.fire_at == T0 + timedelta(
        seconds=1, milliseconds=1000
    )  # firstRetryInterval after the failure
    assert [(w.kind, w.task_id) for w in decisions[2].work] == [("activity", 2)]  # the second attempt
    assert [(w.kind, w.task_id) for w in decisions[3].work] == [("timer", 3)]  # still one more timer
    assert [(w.kind, w.task_id, w.name) for w in decisions[4].work] == [("activity", 4, "next")]
    assert decisions[5].status == "Completed"
    assert decisions[5].output == ["gave up: boom", "done"]


def racing(context):
    timer = context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
    event = context.wait_for_external_event("Go")
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
    return winner == event


def test_an_event_takes_no_id_and_cancels_the_timer_it_beat():
    go = h.event(h.EVENT_RAISED, T0, Name="Go", Input=json.dumps(True))
    decisions, instance = play(racing, [[], [go]])
    assert [(w.kind, w.task_id) for w in decisions[0].work] == [("timer", 0)]
    assert decisions[0].waits == {"Go": 1}
    assert decisions[1].canceled_timers == [0]
    assert decisions[1].status == "Completed" and decisions[1].output is True
    timer_event = next(e for e in instance.history if e["EventType"] == h.TIMER_CREATED)
    assert timer_event["IsCanceled"] is True and timer_event["FireAt"] == "2026-01-01T00:05:00.000000Z"


def calling(context):
    counter = df.EntityId("Counter", "k")
    context.signal_entity(counter, "add", 1)
    value = yield context.call_entity(counter, "get")
    return value


def test_entity_calls_carry_a_deterministic_request_id_and_signals_none():
    decisions, instance = play(calling, [[]])
    signal, call = decisions[0].work
    assert (signal.kind, signal.task_id, signal.target, signal.input) == ("signal", 0, "@counter@k", "1")
    assert (call.kind, call.task_id, call.request_id) == ("call", 1, request_id(instance, 1))
    sent = [e for e in decisions[0].events if e["EventType"] == h.EVENT_SENT]
    assert [e.get("RequestId") for e in sent] == [None, call.request_id]
    answer = h.event(h.EVENT_RAISED, T0, Name=call.request_id, Input=json.dumps({"result": "7"}))
    decisions, _ = play(calling, [[], [answer]])
    assert decisions[1].output == 7


def continuing(context):
    n = context.get_input()
    if n < 2:
        context.continue_as_new(n + 1)
    return n


def test_continue_as_new_ends_the_execution_with_the_next_input():
    decisions, _ = play(continuing, [[]], input_text="0")
    assert decisions[0].status == "ContinuedAsNew"
    assert decisions[0].continue_input == "1"


def broken(context):
    yield context.call_activity("a", None)
    raise ValueError("bad state")


def test_an_orchestrator_exception_fails_the_instance_with_its_message():
    decisions, _ = play(broken, [[], [completed(0, None)]])
    assert decisions[1].status == "Failed"
    assert "bad state" in decisions[1].output
    assert decisions[1].work == []


def test_public_history_condenses_episodes_and_pairs_entity_answers():
    go = h.event(h.EVENT_RAISED, T0, Name="Go", Input=json.dumps(True))
    _, instance = play(racing, [[], [go]])
    shown = h.public_history(instance.history, with_output=True)
    assert [e["EventType"] for e in shown] == ["ExecutionStarted", "TimerCreated", "EventRaised"]
    assert shown[2]["Input"] is True
    call_id = request_id(Instance("inst1", "orch", "exec1", None, None, [], 0), 1)
    answer = h.event(
        h.EVENT_RAISED, T0, Name=call_id, Input=json.dumps({"result": '"boom"', "exceptionType": "X"})
    )
    _, instance = play(calling, [[], [answer]])
    shown = h.public_history(instance.history, with_output=True)
    calls = [e for e in shown if e["EventType"] in ("EntityCalled", "EntitySignaled")]
    assert [(e["EventType"], e["Operation"]) for e in calls] == [
        ("EntitySignaled", "add"),
        ("EntityCalled", "get"),
    ]
    assert calls[1]["Error"] == "boom"


def raised(name: str, value) -> dict:
    return h.event(h.EVENT_RAISED, T0, Name=name, Input=json.dumps(value))


def waiting_loop(context):
    seen = []
    for _ in range(context.get_input()):
        seen.append((yield context.wait_for_external_event("Tick")))
    return seen


def waiting_with_work_between(context):
    first = yield context.wait_for_external_event("Tick")
    done = yield context.call_activity("work", first)
    second = yield context.wait_for_external_event("Tick")
    return [done, second]


def waiting_then_continuing(context):
    seen = context.get_input() or []
    if len(seen) == 3:
        return seen
    seen = [*seen, (yield context.wait_for_external_event("Tick"))]
    context.continue_as_new(seen)


def first_episode(fn, input_text: str | None) -> Instance:
    """An instance after its first episode (waiting on its first Tick)."""
    _, instance = play(fn, [[]], input_text)
    return instance


def test_held_events_are_taken_in_one_episode_when_each_finds_its_wait_open():
    instance = first_episode(waiting_loop, "10")
    held = [raised("Tick", i) for i in range(1, 6)]
    decision = run_episode(handle(waiting_loop), instance, [raised("Tick", 0)], T0, held)
    assert decision.status == "Running" and decision.held_taken == 5
    assert [json.loads(e["Input"]) for e in decision.events if e["EventType"] == h.EVENT_RAISED] == [
        0,
        1,
        2,
        3,
        4,
        5,
    ]
    assert decision.waits == {"Tick": 7}  # six answered, the seventh open


def test_held_events_the_sdk_would_buffer_are_left_for_later():
    """The second Tick comes while the activity runs: the SDK would buffer it and hand it to every
    later wait, so the episode runs without it."""
    instance = first_episode(waiting_with_work_between, None)
    alone = run_episode(handle(waiting_with_work_between), instance, [raised("Tick", "a")], T0)
    tried = run_episode(
        handle(waiting_with_work_between), instance, [raised("Tick", "a")], T0, [raised("Tick", "b")]
    )
    assert tried.held_taken == 0
    assert tried.events == alone.events and [w.name for w in tried.work] == ["work"]


def test_a_completing_orchestrator_takes_held_events_up_to_its_last_wait_and_one_continuing_none():
    instance = first_episode(waiting_loop, "3")
    held = [raised("Tick", i) for i in range(1, 5)]
    decision = run_episode(handle(waiting_loop), instance, [raised("Tick", 0)], T0, held)
    assert decision.status == "Completed" and decision.output == [0, 1, 2]
    assert decision.held_taken == 2  # the fourth and fifth come after the end: left in the inbox
    instance = first_episode(waiting_then_continuing, None)
    decision = run_episode(
        handle(waiting_then_continuing), instance, [raised("Tick", 0)], T0, [raised("Tick", 1)]
    )
    assert decision.status == "ContinuedAsNew" and decision.held_taken == 0  # the next execution's
    assert decision.continue_input == json.dumps([0])
