"""A Durable Functions 2.x app (azure-functions-durable 2.x, Python 3.13): chaining, fan-out/fan-in,
an approval that times out, and a counter entity, started over HTTP.

Written for the 2.x SDK only: nothing here knows about durableagent or the harness. Run it with
`python -m harness host samples/durable2 --python PATH-TO-PYTHON-3.13` (or a `.venv` in this folder,
made with `python3.13 -m venv .venv && .venv/bin/pip install -r requirements.txt`).
"""

from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableFunctionsClient) -> func.HttpResponse:
    """Start the orchestrator named in the route with the request's JSON body as its input."""
    body = req.get_body()
    instance_id = await client.schedule_new_orchestration(
        req.route_params["name"], input=req.get_json() if body else None
    )
    return client.create_check_status_response(req, instance_id)


@app.route(route="approvals/{instance_id}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def approve(req: func.HttpRequest, client: df.DurableFunctionsClient) -> func.HttpResponse:
    """Answer an approval: the body's `approved` is raised as the `Approval` event."""
    await client.raise_orchestration_event(
        req.route_params["instance_id"], "Approval", data=bool(req.get_json().get("approved"))
    )
    return func.HttpResponse(status_code=202)


@app.route(route="counters/{key}", methods=["GET", "POST"])
@app.durable_client_input(client_name="client")
async def counter(req: func.HttpRequest, client: df.DurableFunctionsClient) -> func.HttpResponse:
    """POST adds the body's `amount` to the counter; GET reads it."""
    entity = df.EntityId("Counter", req.route_params["key"])
    if req.method == "POST":
        await client.signal_entity(entity, "add", int(req.get_json().get("amount", 1)))
        return func.HttpResponse(status_code=202)
    state = await client.read_entity_state(entity)
    return func.HttpResponse(str(state.entity_state if state.entity_exists else 0))


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Three activities in a row, each given the one before's output."""
    first = yield context.call_activity("greet", "Tokyo")
    second = yield context.call_activity("greet", first)
    third = yield context.call_activity("greet", second)
    return [first, second, third]


@app.orchestration_trigger(context_name="context")
def fan_out(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """`count` activities at once, their results summed."""
    count = int(context.get_input() or 5)
    results = yield context.task_all([context.call_activity("square", n) for n in range(count)])
    return sum(results)


@app.orchestration_trigger(context_name="context")
def approval(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Wait for the `Approval` event for at most `hours` (default 72) of durable time."""
    hours = float(context.get_input() or 72)
    deadline = context.current_utc_datetime + timedelta(hours=hours)
    answer = context.wait_for_external_event("Approval")
    timeout = context.create_timer(deadline)
    winner = yield context.task_any([answer, timeout])
    if winner == answer:
        timeout.cancel()
        return "approved" if answer.result else "rejected"
    return "timed out"


@app.orchestration_trigger(context_name="context")
def count_up(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    """Call the counter entity from an orchestration and return its value."""
    entity = df.EntityId("Counter", context.get_input() or "shared")
    yield context.call_entity(entity, "add", 10)
    value = yield context.call_entity(entity, "get")
    return value


@app.activity_trigger(input_name="city")
def greet(city: str) -> str:
    return f"Hello {city}"


@app.activity_trigger(input_name="n")
def square(n: int) -> int:
    return n * n


@app.entity_trigger(context_name="context", entity_name="Counter")
def counter_entity(context: df.DurableEntityContext) -> None:
    """A counter: `add` adds the input, `get` returns the value, `reset` sets it to 0."""
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += int(context.get_input() or 0)
        context.set_state(value)
    elif operation == "reset":
        context.set_state(0)
    elif operation == "get":
        context.set_result(value)
