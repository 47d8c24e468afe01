"""A plain Durable Functions app (SDK API only) used to verify the local functions host."""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.entity_trigger(context_name="context", entity_name="Counter")
def counter(context: df.DurableEntityContext) -> None:
    """A counter entity: add, reset and get."""
    value = context.get_state(lambda: 0)
    operation = context.operation_name
    if operation == "add":
        value += context.get_input() or 0
        context.set_state(value)
    elif operation == "reset":
        context.set_state(0)
    elif operation == "get":
        context.set_result(value)
    elif operation == "delete":
        context.destruct_on_exit()
    elif operation == "set":
        context.set_state(context.get_input())
    else:
        raise ValueError(f"unknown operation {operation}")


@app.route(route="counters/{key}/{op}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def signal_counter(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Signal the counter: the body (JSON, optional) is the operation input."""
    body = req.get_body()
    value = json.loads(body) if body else None
    entity_id = df.EntityId("Counter", req.route_params["key"])
    await client.signal_entity(entity_id, req.route_params["op"], value)
    return func.HttpResponse(status_code=202)


@app.route(route="counters/{key}", methods=["GET"])
@app.durable_client_input(client_name="client")
async def read_counter(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Read the counter state through the Durable client."""
    state = await client.read_entity_state(df.EntityId("Counter", req.route_params["key"]))
    if not state.entity_exists:
        return func.HttpResponse(
            json.dumps({"error": "not found"}), status_code=404, mimetype="application/json"
        )
    return func.HttpResponse(json.dumps({"value": state.entity_state}), mimetype="application/json")


@app.route(route="hello", methods=["GET", "POST"])
def hello(req: func.HttpRequest, context: func.Context) -> func.HttpResponse:
    """A sync function: the host runs it in a worker thread."""
    import threading

    name = req.params.get("name", "world")
    return func.HttpResponse(
        json.dumps(
            {
                "hello": name,
                "thread": threading.current_thread().name,
                "function": context.function_name,
                "invocation_id": context.invocation_id,
            }
        ),
        mimetype="application/json",
    )


@app.route(route="items/{id:int}/{*rest}", methods=["GET"])
def item(req: func.HttpRequest) -> str:
    """Route constraints and a catch-all; returns a plain string."""
    return f"item {req.route_params['id']} rest={req.route_params.get('rest', '')}"


@app.route(route="boom")
async def boom(req: func.HttpRequest) -> func.HttpResponse:
    """Always fails, to check the host's 500 handling."""
    raise RuntimeError("boom on purpose")


@app.route(route="secret", auth_level=func.AuthLevel.FUNCTION)
def secret(req: func.HttpRequest) -> func.HttpResponse:
    """A FUNCTION-level route, open locally unless keys are enforced."""
    return func.HttpResponse("secret ok")


@app.timer_trigger(schedule="0 */5 * * * *", arg_name="timer", run_on_startup=False)
def tick(timer: func.TimerRequest) -> None:
    """A timer trigger (every five minutes: the tests do not wait for it)."""
