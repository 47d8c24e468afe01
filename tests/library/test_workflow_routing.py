"""The orchestrator's router: agent-framework's own edge runners decide each superstep's
deliveries (conditions, fan-out selection, fan-in, explicit targets), with nothing executed."""

from __future__ import annotations

from agent_framework import Executor, WorkflowBuilder, WorkflowContext, handler
from agent_framework._workflows._const import INTERNAL_SOURCE_ID
from agent_framework._workflows._runner_context import WorkflowMessage

from durableagent.workflows.routing import Router


class Text(Executor):
    @handler
    async def take(self, text: str, ctx: WorkflowContext[str]) -> None: ...


class Number(Executor):
    @handler
    async def take(self, number: int, ctx: WorkflowContext[int]) -> None: ...


class Many(Executor):
    @handler
    async def take(self, items: list[str], ctx: WorkflowContext[str]) -> None: ...


def targets(deliveries) -> list[str]:
    return [d.target for d in deliveries]


def test_the_first_message_goes_to_the_start_executor():
    start = Text(id="start")
    router = Router(WorkflowBuilder(start_executor=start).add_edge(start, Text(id="next")).build())
    entry = WorkflowMessage(data="hi", source_id=INTERNAL_SOURCE_ID("start"), target_id="start")
    (delivery,) = router.route([entry])
    assert delivery.target == "start" and delivery.message.data == "hi"


def test_conditions_and_types_decide_single_edges():
    start = Text(id="start")
    wf = (
        WorkflowBuilder(start_executor=start)
        .add_edge(start, Text(id="short"), condition=lambda text: len(text) < 5)
        .add_edge(start, Text(id="long"), condition=lambda text: len(text) >= 5)
        .build()
    )
    router = Router(wf)
    assert targets(router.route([WorkflowMessage(data="hey", source_id="start")])) == ["short"]
    assert targets(router.route([WorkflowMessage(data="hello there", source_id="start")])) == ["long"]


def test_an_explicit_target_reaches_only_that_executor():
    start = Text(id="start")
    wf = WorkflowBuilder(start_executor=start).add_fan_out_edges(start, [Text(id="a"), Text(id="b")]).build()
    router = Router(wf)
    assert targets(router.route([WorkflowMessage(data="x", source_id="start")])) == ["a", "b"]
    assert targets(router.route([WorkflowMessage(data="x", source_id="start", target_id="b")])) == ["b"]


def test_a_fan_in_waits_for_every_source_then_delivers_them_together():
    start, a, b, join = Text(id="start"), Text(id="a"), Text(id="b"), Many(id="join")
    wf = (
        WorkflowBuilder(start_executor=start)
        .add_fan_out_edges(start, [a, b])
        .add_fan_in_edges([a, b], join)
        .build()
    )
    router = Router(wf)
    assert router.route([WorkflowMessage(data="from a", source_id="a")]) == []
    (delivery,) = router.route([WorkflowMessage(data="from b", source_id="b")])
    assert delivery.target == "join" and sorted(delivery.message.data) == ["from a", "from b"]
    assert sorted(delivery.source_ids) == ["a", "b"]
