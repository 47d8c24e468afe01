"""A plain Durable Functions app (no durableagent) exercising every orchestration feature the local
host supports; the host tests drive it through the real DurableOrchestrationClient."""

import asyncio
import json
import time
from datetime import timedelta

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

# Attempts per key of the flaky activity, kept in this process (a restart forgets them).
ATTEMPTS: dict[str, int] = {}


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    payload = json.loads(body) if body else None
    instance_id = await client.start_new(req.route_params["name"], req.params.get("id"), payload)
    return client.create_check_status_response(req, instance_id)


@app.route(route="run/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def run_and_wait(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["name"], None, json.loads(body) if body else None)
    return await client.wait_for_completion_or_create_check_status_response(
        req, instance_id, timeout_in_milliseconds=10_000, retry_interval_in_milliseconds=50
    )


# -- activities --------------------------------------------------------------------------------
@app.activity_trigger(input_name="name")
def say_hello(name: str) -> str:
    return f"Hello {name}"


@app.activity_trigger(input_name="value", activity="Double")
async def double_it(value: int) -> int:
    await asyncio.sleep(0)
    return value * 2


@app.activity_trigger(input_name="spec")
def slow_square(spec: dict) -> int:
    time.sleep(spec.get("sleep", 0))
    return spec["n"] * spec["n"]


@app.activity_trigger(input_name="spec")
def flaky(spec: dict) -> str:
    ATTEMPTS[spec["key"]] = ATTEMPTS.get(spec["key"], 0) + 1
    if ATTEMPTS[spec["key"]] <= spec["failures"]:
        raise RuntimeError(f"attempt {ATTEMPTS[spec['key']]} failed")
    return f"ok after {ATTEMPTS[spec['key']]}"


@app.activity_trigger(input_name="message")
def explode(message: str) -> None:
    raise ValueError(message)


@app.activity_trigger(input_name="anything")
def notify(anything: object) -> dict:
    return {"notified": anything}


# -- orchestrators -----------------------------------------------------------------------------
@app.orchestration_trigger(context_name="context")
def hello_sequence(context: df.DurableOrchestrationContext):
    cities = context.get_input() or ["Tokyo", "Seattle", "London"]
    results = []
    for city in cities:
        results.append((yield context.call_activity("say_hello", city)))
    context.set_custom_status({"done": len(results)})
    return results


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext):
    spec = context.get_input() or {}
    tasks = [
        context.call_activity("slow_square", {"n": i, "sleep": spec.get("sleep", 0)})
        for i in range(spec["n"])
    ]
    squares = yield context.task_all(tasks)
    doubled = yield context.call_activity("Double", sum(squares))
    return {"count": len(squares), "sum": sum(squares), "doubled": doubled}


@app.orchestration_trigger(context_name="context")
def with_retry(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    options = df.RetryOptions(
        first_retry_interval_in_milliseconds=50, max_number_of_attempts=spec["attempts"]
    )
    try:
        result = yield context.call_activity_with_retry("flaky", options, spec)
    except Exception as exc:
        return {"failed": str(exc).splitlines()[0]}
    after = yield context.call_activity("say_hello", "after retry")
    return {"result": result, "after": after}


@app.orchestration_trigger(context_name="context")
def failing(context: df.DurableOrchestrationContext):
    spec = context.get_input() or {}
    if spec.get("catch"):
        try:
            yield context.call_activity("explode", "caught boom")
        except Exception as exc:
            return {"caught": str(exc).split(" \n ")[0]}
    yield context.call_activity(spec.get("activity", "explode"), "uncaught boom")
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def parent(context: df.DurableOrchestrationContext):
    spec = context.get_input() or {}
    first = yield context.call_sub_orchestrator("hello_sequence", ["A", "B"])
    named = yield context.call_sub_orchestrator("hello_sequence", ["C"], spec.get("child_id"))
    options = df.RetryOptions(first_retry_interval_in_milliseconds=50, max_number_of_attempts=2)
    try:
        yield context.call_sub_orchestrator_with_retry("failing", options, {})
        failed = None
    except Exception as exc:
        failed = str(exc).split(":")[0]
    return {"first": first, "named": named, "child_failed": failed}


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext):
    spec = context.get_input() or {}
    context.set_custom_status("waiting for approval")
    deadline = context.current_utc_datetime + timedelta(seconds=spec.get("timeout", 30))
    timer = context.create_timer(deadline)
    event = context.wait_for_external_event("Approval")
    winner = yield context.task_any([event, timer])
    if winner == event:
        timer.cancel()
        yield context.call_activity("notify", event.result)
        return {"approved": event.result}
    return {"timed_out": True}


@app.orchestration_trigger(context_name="context")
def two_events(context: df.DurableOrchestrationContext):
    first = yield context.wait_for_external_event("Step")
    second = yield context.wait_for_external_event("Step")
    return [first, second]


@app.orchestration_trigger(context_name="context")
def entities(context: df.DurableOrchestrationContext):
    key = context.get_input()
    counter = df.EntityId("Counter", key)
    context.signal_entity(counter, "add", 5)
    value = yield context.call_entity(counter, "add", 10)
    current = yield context.call_entity(counter, "get")
    try:
        yield context.call_entity(counter, "fail")
        error = None
    except Exception as exc:
        error = str(exc)
    return {"after_add": value, "current": current, "error": error}


@app.orchestration_trigger(context_name="context")
def counting(context: df.DurableOrchestrationContext):
    state = context.get_input() or {"n": 0, "seen": []}
    if state["n"] >= 3:
        return state
    item = yield context.wait_for_external_event("Item")
    state = {"n": state["n"] + 1, "seen": [*state["seen"], item]}
    context.continue_as_new(state)
    return None


@app.orchestration_trigger(context_name="context")
def deterministic(context: df.DurableOrchestrationContext):
    first = str(context.new_uuid())
    started = context.current_utc_datetime.isoformat()
    context.set_custom_status({"first": first, "started": started})  # as the first episode saw them
    yield context.call_activity("say_hello", "x")
    second = str(context.new_uuid())
    yield context.create_timer(context.current_utc_datetime + timedelta(milliseconds=200))
    return {"first": first, "second": second, "started": started, "replaying": context.is_replaying}


@app.orchestration_trigger(context_name="context")
def timer_only(context: df.DurableOrchestrationContext):
    seconds = context.get_input()
    yield context.create_timer(context.current_utc_datetime + timedelta(seconds=seconds))
    return "fired"


@app.orchestration_trigger(context_name="context")
def http_call(context: df.DurableOrchestrationContext):
    yield context.call_http("GET", "http://127.0.0.1:9/nothing")
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def plain(context: df.DurableOrchestrationContext):
    return {"plain": context.get_input()}


@app.orchestration_trigger(context_name="context", orchestration="Renamed")
def renamed_orchestrator(context: df.DurableOrchestrationContext):
    value = yield context.call_activity("Double", context.get_input())
    return value


# -- an entity -----------------------------------------------------------------------------------
@app.entity_trigger(context_name="context")
def Counter(context: df.DurableEntityContext) -> None:  # noqa: N802 - the entity's name
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += context.get_input()
        context.set_result(value)
    elif operation == "get":
        context.set_result(value)
    elif operation == "fail":
        raise ValueError("counter refuses")
    context.set_state(value)


@app.orchestration_trigger(context_name="context")
def unknown_child(context: df.DurableOrchestrationContext):
    yield context.call_sub_orchestrator("no_such_orchestrator", None)
    return "unreachable"


@app.orchestration_trigger(context_name="context")
def signal_and_finish(context: df.DurableOrchestrationContext):
    spec = context.get_input()
    context.signal_entity(df.EntityId("Counter", spec["key"]), "add", spec["n"])
    if spec["n"] > 1:
        context.continue_as_new({"key": spec["key"], "n": spec["n"] - 1})
        return None
    return "signalled"


@app.orchestration_trigger(context_name="context")
def signal_nobody(context: df.DurableOrchestrationContext):
    context.signal_entity(df.EntityId("NoSuchEntity", "k"), "poke", 1)
    return "done"


@app.orchestration_trigger(context_name="context")
def event_loop(context: df.DurableOrchestrationContext):
    """Takes `n` "Tick" events one wait at a time: each wait opens once the previous one is answered."""
    seen = []
    for _ in range(context.get_input()):
        seen.append((yield context.wait_for_external_event("Tick")))
    return seen


@app.orchestration_trigger(context_name="context")
def call_then_wait(context: df.DurableOrchestrationContext):
    """Calls the Counter entity, then waits for a "Go" event."""
    value = yield context.call_entity(df.EntityId("Counter", context.get_input()), "add", 1)
    go = yield context.wait_for_external_event("Go")
    return {"value": value, "go": go}
