"""Plain Durable Functions orchestrations (no agents): one activity, a chain, and a fan-out/fan-in.

Start one with `POST /api/orchestrators/{name}` and a JSON body; the answer is the check-status
response. The benchmark (`python -m harness bench`) times these on the local host.
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="orchestrators/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    body = req.get_body()
    instance_id = await client.start_new(req.route_params["name"], None, req.get_json() if body else None)
    return client.create_check_status_response(req, instance_id)


@app.activity_trigger(input_name="value")
def square(value: int) -> int:
    return value * value


@app.orchestration_trigger(context_name="context")
def one_activity(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    result = yield context.call_activity("square", context.get_input() or 3)
    return result


@app.orchestration_trigger(context_name="context")
def chain(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    value = context.get_input() or 2
    for _ in range(3):
        value = yield context.call_activity("square", value)
    return value


@app.orchestration_trigger(context_name="context")
def fan_out_fan_in(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    count = context.get_input() or 10
    squares = yield context.task_all([context.call_activity("square", i) for i in range(count)])
    return sum(squares)
