"""A Durable Functions 2.x test app: activities that take long, fail, or end their own process; a
queue trigger that starts orchestrations and a timer trigger that leaves a mark."""

import os
import time
from pathlib import Path

import azure.durable_functions as df
import azure.functions as func
from durabletask import entities, task

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.route(route="start/{name}", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start(req: func.HttpRequest, client: df.DurableFunctionsClient) -> func.HttpResponse:
    instance_id = await client.schedule_new_orchestration(req.route_params["name"], input=req.get_json())
    return client.create_check_status_response(req, instance_id)


@app.route(route="pid")  # every method: its binding describes no `methods`
def pid(req: func.HttpRequest) -> func.HttpResponse:
    return func.HttpResponse(str(os.getpid()))


@app.orchestration_trigger(context_name="context")
def slow_then_done(context: df.DurableOrchestrationContext):
    """Runs the `slow` activity (which records each attempt in a folder) and returns its result."""
    result = yield context.call_activity("slow", context.get_input())
    return result


@app.orchestration_trigger(context_name="context")
def catches(context: df.DurableOrchestrationContext):
    """Calls `fails` and returns what the failure said."""
    try:
        yield context.call_activity("fails", context.get_input())
    except Exception as exc:  # the activity's failure, as the orchestrator sees it
        return f"caught: {exc}"
    return "no failure"


@app.orchestration_trigger(context_name="context")
def waits(context: df.DurableOrchestrationContext):
    """Waits for the `Go` event, then returns its data."""
    value = yield context.wait_for_external_event("Go")
    return {"go": value}


@app.activity_trigger(input_name="job")
def slow(job: dict) -> str:
    folder = Path(job["folder"])
    attempt = len(list(folder.glob("attempt-*"))) + 1
    (folder / f"attempt-{attempt}").write_text(str(os.getpid()))
    time.sleep(float(job.get("seconds", 0)) if attempt == 1 else 0)
    return f"done after {attempt} attempts"


@app.activity_trigger(input_name="seconds")
def hangs(seconds: float) -> str:
    time.sleep(seconds)
    return "woke up"


@app.orchestration_trigger(context_name="context")
def catches_a_hang(context: df.DurableOrchestrationContext):  # noqa: ANN201
    """Calls `hangs` for longer than host.json's functionTimeout and returns what the failure said."""
    try:
        yield context.call_activity("hangs", context.get_input())
    except Exception as exc:
        return f"caught: {exc}"
    return "no failure"


@app.orchestration_trigger(context_name="context")
def hangs_itself(context: df.DurableOrchestrationContext):  # noqa: ANN201
    """Orchestrator code that blocks (it must not): its instance fails at functionTimeout."""
    time.sleep(float(context.get_input()))
    yield context.call_activity("hangs", 0)
    return "done"


@app.activity_trigger(input_name="text")
def fails(text: str) -> str:
    raise ValueError(f"bad input {text!r}")


@app.queue_trigger(arg_name="message", queue_name="starts2", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def start_from_queue(message: func.QueueMessage, client: df.DurableFunctionsClient) -> None:
    """Each message's body is the instance id of a `waits` orchestration to start."""
    await client.schedule_new_orchestration("waits", instance_id=message.get_body().decode())


@app.timer_trigger(arg_name="timer", schedule="*/1 * * * * *")
def tick(timer: func.TimerRequest, context: func.Context) -> None:
    """Leaves a line per firing: the process, whether it was past due, and the function's name."""
    folder = os.environ.get("TICK_DIR")
    if folder:
        line = f"{os.getpid()} past_due={timer.past_due} {context.function_name}\n"
        Path(folder, "ticks").open("a").write(line)


@app.entity_trigger(context_name="context", entity_name="Account")
def account(context: df.DurableEntityContext) -> None:
    balance = context.get_state(lambda: 0)
    if context.operation_name == "add":
        context.set_state(balance + int(context.get_input()))
    elif context.operation_name == "get":
        context.set_result(balance)


@app.orchestration_trigger(context_name="context")
def transfer(ctx: task.OrchestrationContext, job: dict):  # noqa: ANN201 - a durabletask-native orchestrator
    """Moves `amount` from account `source` to `target` inside a critical section over both."""
    source = entities.EntityInstanceId("Account", job["source"])
    target = entities.EntityInstanceId("Account", job["target"])
    with (yield ctx.lock_entities([source, target])):
        before = yield ctx.call_entity(source, "get")
        yield ctx.call_entity(source, "add", -job["amount"])
        yield ctx.call_entity(target, "add", job["amount"])
    return before
