"""`samples/orchestration_basics`' orchestrations on Durable Functions 2.x (Python 3.13), for the
benchmark that times the same orchestrations on a 1.x and a 2.x app (`python -m harness bench`).
The bench starts them through the Durable HTTP API, so the app needs no HTTP starter."""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df

app = df.DFApp()


@app.activity_trigger(input_name="value")
def square(value: int) -> int:
    return value * value


@app.orchestration_trigger(context_name="context")
def one_activity(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    result = yield context.call_activity("square", context.get_input() or 3)
    return result


@app.orchestration_trigger(context_name="context")
def fan_out_fan_in(context: df.DurableOrchestrationContext) -> Generator[Any, Any, Any]:
    count = context.get_input() or 10
    squares = yield context.task_all([context.call_activity("square", i) for i in range(count)])
    return sum(squares)
