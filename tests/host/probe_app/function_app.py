"""Orchestrators for the adversarial probes of the local host (test_host_orchestration_probe.py)."""

import json
import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

ATTEMPTS: dict[str, int] = {}


@app.activity_trigger(input_name="name")
def hello(name: str) -> str:
    return f"Hello {name}"


@app.activity_trigger(input_name="spec")
def sleepy(spec: dict) -> int:
    time.sleep(spec.get("sleep", 0))
    return spec.get("n", 0)


@app.activity_trigger(input_name="spec")
def flaky(spec: dict) -> str:
    ATTEMPTS[spec["key"]] = ATTEMPTS.get(spec["key"], 0) + 1
    if ATTEMPTS[spec["key"]] <= spec["failures"]:
        raise RuntimeError(f"attempt {ATTEMPTS[spec['key']]} failed")
    return f"{spec['key']} ok after {ATTEMPTS[spec['key']]}"


@app.activity_trigger(input_name="size")
def big(size: int) -> str:
    return "x" * size


@app.orchestration_trigger(context_name="context")
def child(context: df.DurableOrchestrationContext):
    value = yield context.call_activity("hello", context.get_input())
    return value


@app.orchestration_trigger(context_name="context")
def flaky_child(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    value = yield context.call_activity("flaky", spec)
    return value


@app.orchestration_trigger(context_name="context")
def named_child(context: df.DurableOrchestrationContext):
    """A sub-orchestration under a fixed id derived from the parent's id (a common pattern)."""
    spec = context.get_input() or {}
    n = spec.get("n", 0)
    value = yield context.call_sub_orchestrator("child", f"run{n}", f"{context.instance_id}-child")
    if n < spec.get("continue_until", 0):
        context.continue_as_new({**spec, "n": n + 1, "seen": [*spec.get("seen", []), value]})
        return None
    return [*spec.get("seen", []), value]


@app.orchestration_trigger(context_name="context")
def bad_child_id(context: df.DurableOrchestrationContext):
    try:
        yield context.call_sub_orchestrator("child", "x", context.get_input())
    except Exception as exc:
        return {"failed": str(exc)[:200]}
    return "started"


@app.orchestration_trigger(context_name="context")
def retry_in_any(context: df.DurableOrchestrationContext):
    key = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=20, max_number_of_attempts=3)
    retry = context.call_activity_with_retry("flaky", options, {"key": key, "failures": 1})
    other = context.call_activity("hello", "other")
    yield context.task_any([retry, other])
    result = yield retry
    after = yield context.call_activity("hello", "after")
    return [result, other.result, after]


@app.orchestration_trigger(context_name="context")
def two_retries(context: df.DurableOrchestrationContext):
    key = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=20, max_number_of_attempts=4)
    tasks = [
        context.call_activity_with_retry("flaky", options, {"key": f"{key}-{i}", "failures": 2})
        for i in range(2)
    ]
    tasks.append(context.call_activity("hello", "third"))
    results = yield context.task_all(tasks)
    after = yield context.call_activity("hello", "after")
    return [*results, after]


@app.orchestration_trigger(context_name="context")
def sub_retry(context: df.DurableOrchestrationContext):
    key = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=20, max_number_of_attempts=3)
    value = yield context.call_sub_orchestrator_with_retry(
        "flaky_child", options, {"key": key, "failures": 1}
    )
    return value


@app.orchestration_trigger(context_name="context")
def timers(context: df.DurableOrchestrationContext):
    now = context.current_utc_datetime
    short = context.create_timer(now + timedelta(milliseconds=100))
    long = context.create_timer(now + timedelta(seconds=60))
    winner = yield context.task_any([short, long])
    long.cancel()
    again = yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=50))
    return ["short" if winner == short else "long", again is None]


@app.orchestration_trigger(context_name="context")
def same_name_any(context: df.DurableOrchestrationContext):
    a = context.wait_for_external_event("E")
    b = context.wait_for_external_event("E")
    c = context.wait_for_external_event("F")
    winner = yield context.task_any([a, b, c])
    first = winner.result
    rest = yield context.wait_for_external_event("E")
    return [first, rest]


@app.orchestration_trigger(context_name="context")
def can_with_pending(context: df.DurableOrchestrationContext):
    n = context.get_input() or 0
    if n >= 2:
        return n
    slow = context.call_activity("sleepy", {"sleep": 1.5, "n": n})
    timer = context.create_timer(context.current_utc_datetime + timedelta(seconds=30))
    quick = context.call_activity("hello", str(n))
    yield context.task_any([slow, timer, quick])
    context.continue_as_new(n + 1)
    return None


@app.orchestration_trigger(context_name="context")
def status_values(context: df.DurableOrchestrationContext):
    values = context.get_input()
    for value in values:
        context.set_custom_status(value)
        yield context.call_activity("hello", "x")
    return "done"


@app.orchestration_trigger(context_name="context")
def raise_first(context: df.DurableOrchestrationContext):
    raise ValueError("first episode boom")
    yield  # noqa - a generator


@app.orchestration_trigger(context_name="context")
def not_json(context: df.DurableOrchestrationContext):
    yield context.call_activity("hello", "x")
    return {1, 2}


@app.orchestration_trigger(context_name="context")
def huge(context: df.DurableOrchestrationContext):
    size = context.get_input()
    text = yield context.call_activity("big", size)
    return {"len": len(text), "text": text}


@app.orchestration_trigger(context_name="context")
def long_chain(context: df.DurableOrchestrationContext):
    n = context.get_input()
    total = 0
    for i in range(n):
        total += yield context.call_activity("sleepy", {"n": i})
    return total


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    tasks = [
        context.call_activity("sleepy", {"n": i, "sleep": spec.get("sleep", 0)}) for i in range(spec["n"])
    ]
    results = yield context.task_all(tasks)
    return sum(results)


@app.orchestration_trigger(context_name="context")
def entity_calls(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    counter = df.EntityId("Counter", spec["key"])
    last = None
    for _ in range(spec["calls"]):
        last = yield context.call_entity(counter, "add", 1)
    for _ in range(spec.get("signals", 0)):
        context.signal_entity(df.EntityId("Counter", spec["key"] + "-s"), "add", 1)
        yield context.call_activity("hello", "tick")
    return last


@app.orchestration_trigger(context_name="context")
def entity_signal_then_wait(context: df.DurableOrchestrationContext):
    key = context.get_input()
    context.signal_entity(df.EntityId("Counter", key), "add", 1)
    yield context.call_activity("hello", "x")
    value = yield context.wait_for_external_event("Go")
    return value


@app.orchestration_trigger(context_name="context")
def signal_then_two_waits(context: df.DurableOrchestrationContext):
    context.signal_entity(df.EntityId("Counter", context.get_input()), "add", 1)
    first = yield context.wait_for_external_event("Go")
    second = yield context.wait_for_external_event("Go2")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def retry_then_more(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=spec["interval"], max_number_of_attempts=3)
    retry = context.call_activity_with_retry(
        "flaky", options, {"key": spec["key"], "failures": spec["failures"]}
    )
    other = context.call_activity("sleepy", {"sleep": spec["other_sleep"], "n": 1})
    yield context.task_any([retry, other])
    more = yield context.task_all(
        [context.call_activity("sleepy", {"sleep": s, "n": 2}) for s in spec["more"]]
    )
    try:
        result = yield retry
    except Exception as exc:
        result = "failed: " + str(exc).splitlines()[0]
    last = yield context.call_activity("hello", "last")
    return [result, more, last]


@app.orchestration_trigger(context_name="context")
def cancel_then_wait(context: df.DurableOrchestrationContext):
    now = context.current_utc_datetime
    long = context.create_timer(now + timedelta(seconds=60))
    short = context.create_timer(now + timedelta(milliseconds=50))
    yield context.task_any([long, short])
    long.cancel()
    value = yield context.wait_for_external_event("Go")
    return value


@app.orchestration_trigger(context_name="context")
def sub_retry_fast(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    options = df.RetryOptions(first_retry_interval_in_milliseconds=1, max_number_of_attempts=3)
    value = yield context.call_sub_orchestrator_with_retry(
        "flaky_child", options, {"key": spec["key"], "failures": 2}, spec.get("child_id")
    )
    return value


@app.orchestration_trigger(context_name="context")
def many_waits(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    waits = [context.wait_for_external_event(f"{spec['prefix']}-{i:05d}") for i in range(spec["n"])]
    timer = context.create_timer(context.current_utc_datetime + timedelta(milliseconds=200))
    yield context.task_any([*waits, timer])
    return "timed out"


@app.orchestration_trigger(context_name="context")
def sub_fan_out(context: df.DurableOrchestrationContext):
    n = context.get_input()
    results = yield context.task_all([context.call_sub_orchestrator("child", str(i)) for i in range(n)])
    return results


@app.orchestration_trigger(context_name="context")
def event_chain(context: df.DurableOrchestrationContext):
    n = context.get_input()
    seen = []
    for _ in range(n):
        seen.append((yield context.wait_for_external_event("Item")))
    return seen


@app.orchestration_trigger(context_name="context")
def echo(context: df.DurableOrchestrationContext):
    value = context.get_input()
    yield context.call_activity("hello", "x")
    return value


@app.orchestration_trigger(context_name="context")
def waiter(context: df.DurableOrchestrationContext):
    value = yield context.wait_for_external_event("Go")
    return value


@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext) -> None:  # noqa: N802
    value = context.get_state(lambda: 0)
    if context.operation_name == "add":
        value += context.get_input()
        context.set_result(value)
    elif context.operation_name == "get":
        context.set_result(value)
    context.set_state(value)


@app.route(route="ping", methods=["GET"])
def ping(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(json.dumps("pong"), mimetype="application/json")
