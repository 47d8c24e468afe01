"""Functions that hang, for the functionTimeout tests (test_host_timeouts.py).

host.json sets functionTimeout to two seconds; a test can override it with the app setting
`AzureFunctionsJobHost__functionTimeout`. The hung functions wait far longer than any test, and each
appends a line to the file it is given once it runs, so a test can wait until they all hang.
"""

import threading

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

HANG = 120.0  # seconds: far longer than any test, short enough that a leaked process ends


def _mark(path: str | None) -> None:
    if path:
        with open(path, "a", encoding="utf-8") as file:
            file.write("running\n")


@app.activity_trigger(input_name="spec")
def hang(spec: dict) -> str:
    _mark(spec.get("mark"))
    threading.Event().wait(spec.get("seconds", HANG))
    return "woke up"


@app.activity_trigger(input_name="value")
def quick(value: int) -> int:
    return value + 1


@app.orchestration_trigger(context_name="context")
def catcher(context: df.DurableOrchestrationContext):
    """Calls a hung activity, catches its failure, then goes on with other work."""
    spec = context.get_input() or {}
    try:
        yield context.call_activity("hang", spec)
        caught = None
    except Exception as exc:
        caught = str(exc)
    after = yield context.call_activity("quick", 41)
    return {"caught": caught, "after": after}


@app.orchestration_trigger(context_name="context")
def fan_hang(context: df.DurableOrchestrationContext):
    """`n` hung activities at once."""
    spec = context.get_input() or {}
    tasks = [context.call_activity("hang", {"mark": spec.get("mark")}) for _ in range(spec.get("n", 1))]
    yield context.task_all(tasks)
    return "all woke up"


@app.orchestration_trigger(context_name="context")
def one_quick(context: df.DurableOrchestrationContext):
    value = yield context.call_activity("quick", context.get_input() or 0)
    return value


@app.entity_trigger(context_name="context")
def tally(context: df.DurableEntityContext) -> None:
    """`hang` never returns; `add` adds."""
    state = context.get_state(lambda: 0)
    if context.operation_name == "hang":
        threading.Event().wait(HANG)
    elif context.operation_name == "add":
        state += context.get_input()
    context.set_state(state)


@app.queue_trigger(arg_name="msg", queue_name="%HUNG_QUEUE%", connection="AzureWebJobsStorage")
def hung_queue(msg: func.QueueMessage) -> None:
    threading.Event().wait(HANG)


@app.timer_trigger(schedule="%HUNG_TIMER%", arg_name="timer")
def hung_timer(timer: func.TimerRequest) -> None:
    threading.Event().wait(HANG)


@app.route(route="slow", methods=["GET"])
def slow(req: func.HttpRequest) -> func.HttpResponse:
    _mark(req.params.get("mark"))
    threading.Event().wait(HANG)
    return func.HttpResponse("woke up")


@app.route(route="slow_to_thread", methods=["GET"])
async def slow_to_thread(req: func.HttpRequest) -> func.HttpResponse:
    import asyncio

    await asyncio.to_thread(slow, req)  # on the event loop's default executor
    return func.HttpResponse("woke up")


@app.route(route="slow_async", methods=["GET"])
async def slow_async(req: func.HttpRequest) -> func.HttpResponse:
    import asyncio

    await asyncio.sleep(HANG)
    return func.HttpResponse("woke up")
