"""The workflow benchmark's app: each workflow beside the same steps written as a hand-made
orchestrator, so `python -m harness bench` can say what the workflow engine adds.

- `chain5` / `hand_chain5`: five executors (activities) one after another.
- `fan20` / `hand_fan20`: one executor fans out to twenty, which fan in to one (22 activities).
"""

from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Executor, WorkflowBuilder, WorkflowContext, handler

from durableagent import AgentFunctionApp


class Step(Executor):
    @handler
    async def step(self, text: str, ctx: WorkflowContext[str, str]) -> None:
        if self.id == "s4":
            await ctx.yield_output(text + "!")
        else:
            await ctx.send_message(text + ".")


class Spread(Executor):
    @handler
    async def spread(self, number: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message(number)


class Square(Executor):
    @handler
    async def square(self, number: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message(number * number + int(self.id[2:]))


class Total(Executor):
    @handler
    async def total(self, numbers: list[int], ctx: WorkflowContext[None, int]) -> None:
        await ctx.yield_output(sum(numbers))


steps = [Step(id=f"s{i}") for i in range(5)]
chain5 = WorkflowBuilder(name="chain5", start_executor=steps[0]).add_chain(steps).build()
spread, squares, total = Spread(id="spread"), [Square(id=f"sq{i}") for i in range(20)], Total(id="total")
fan20 = (
    WorkflowBuilder(name="fan20", start_executor=spread)
    .add_fan_out_edges(spread, squares)
    .add_fan_in_edges(squares, total)
    .build()
)

app = AgentFunctionApp(workflows=[chain5, fan20], http_auth_level=func.AuthLevel.ANONYMOUS)


@app.activity_trigger(input_name="text")
def hand_step(text: str) -> str:
    return text + "."


@app.activity_trigger(input_name="number")
def hand_square(number: list[int]) -> int:
    value, index = number
    return value * value + index


@app.activity_trigger(input_name="numbers")
def hand_total(numbers: list[int]) -> int:
    return sum(numbers)


@app.orchestration_trigger(context_name="context")
def hand_chain5(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    text = context.get_input()
    for _ in range(5):
        text = yield context.call_activity("hand_step", text)
    return text[:-1] + "!"


@app.orchestration_trigger(context_name="context")
def hand_fan20(context: df.DurableOrchestrationContext) -> Generator[Any, Any, int]:
    yield context.call_activity("hand_step", "spread")  # the workflow's spreading step is an activity too
    number = context.get_input()
    squares = yield context.task_all([context.call_activity("hand_square", [number, i]) for i in range(20)])
    return (yield context.call_activity("hand_total", squares))
