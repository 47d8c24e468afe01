"""Registering workflows on AgentFunctionApp: Microsoft's function names, and clear refusals."""

from __future__ import annotations

import dataclasses
import enum

import pytest
from agent_framework import (
    Agent,
    AgentResponse,
    Executor,
    Message,
    WorkflowBuilder,
    WorkflowContext,
    handler,
)
from pydantic import BaseModel

from durableagent import AgentFunctionApp
from durableagent.workflows.codec import CodecError, convert_input, decode, encode, plain
from fakes import ScriptedChatClient


class Upper(Executor):
    @handler
    async def up(self, text: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(text.upper())


class Count(Executor):
    @handler
    async def count(self, number: int, ctx: WorkflowContext[None, int]) -> None:
        await ctx.yield_output(number)


def names(app: AgentFunctionApp) -> dict[str, list[str]]:
    return {f.get_function_name(): [b.type for b in f.get_bindings()] for f in app.get_functions()}


def test_a_workflow_registers_microsofts_functions():
    agent = Agent(client=ScriptedChatClient(default="hi"), name="Helper")
    up = Upper(id="up")
    wf = WorkflowBuilder(name="shout", start_executor=up).add_edge(up, agent).build()
    app = AgentFunctionApp(workflow=wf)
    found = names(app)
    assert found["dafx-shout"] == ["orchestrationTrigger"]
    assert found["dafx-shout-up"] == ["activityTrigger"]
    assert "entityTrigger" in found["dafx_shout_Helper_entity"]
    for suffix in ("start", "status", "respond"):
        assert "httpTrigger" in found[f"dafx-shout-{suffix}"]
    assert list(app.workflows) == ["shout"]
    assert "shout-Helper" in app.agents


def test_workflows_by_mapping_take_the_given_names():
    up = Upper(id="up")
    app = AgentFunctionApp(workflows={"one": WorkflowBuilder(start_executor=up).build()})
    assert "dafx-one" in names(app)


def test_refusals_name_the_problem():
    app = AgentFunctionApp()
    unnamed = WorkflowBuilder(start_executor=Upper(id="up")).build()
    with pytest.raises(ValueError, match="has no name"):
        app.add_workflow(unnamed)
    with pytest.raises(ValueError, match="cannot name functions"):
        app.add_workflow(unnamed, name="has space")
    app.add_workflow(unnamed, name="first")
    with pytest.raises(ValueError, match="already registered"):
        app.add_workflow(WorkflowBuilder(start_executor=Upper(id="up")).build(), name="FIRST")
    spaced = WorkflowBuilder(name="spaced", start_executor=Upper(id="up here")).build()
    with pytest.raises(ValueError, match="up here"):
        app.add_workflow(spaced)
    with pytest.raises(TypeError, match="Workflow"):
        app.add_workflow("not a workflow")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="request_timeout"):
        app.add_workflow(unnamed, name="x", request_timeout=__import__("datetime").timedelta(0))


def test_a_builder_agent_framework_refuses_is_refused_with_its_message():
    up = Upper(id="up")
    mismatched = WorkflowBuilder(name="bad", start_executor=up).add_edge(up, Count(id="count"))
    with pytest.raises(ValueError, match="refused by agent-framework") as caught:
        AgentFunctionApp().add_workflow(mismatched)
    assert str(caught.value.__cause__) in str(caught.value)


@dataclasses.dataclass
class Point:
    x: int
    label: str


class Model(BaseModel):
    name: str
    points: list[int]


class Colour(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    "value",
    [
        "text",
        3,
        None,
        [1, "a", {"b": 2}],
        {"$type": "not a marker", "x": [Point(1, "p")]},
        Point(2, "q"),
        Model(name="m", points=[1, 2]),
        Colour.RED,
    ],
)
def test_values_cross_a_step_unchanged(value):
    assert decode(encode(value)) == value


def test_agent_framework_types_cross_by_their_own_to_dict():
    message = Message(role="user", contents=["hello"])
    assert decode(encode(message)).to_dict() == message.to_dict()


def test_an_agent_response_keeps_its_text():
    response = AgentResponse(messages=[Message(role="assistant", contents=["done"])])
    assert decode(encode(response)).text == "done"
    assert plain(response) == "done"


def test_what_cannot_be_stored_is_refused_and_stored_data_cannot_name_any_callable():
    with pytest.raises(CodecError, match="cannot cross"):
        encode(object())
    with pytest.raises(CodecError, match="not a class"):
        decode({"$type": "os:system", "$value": "echo hi"})
    with pytest.raises(CodecError, match="not a dataclass"):
        decode({"$type": "builtins:object", "$value": {}})


def test_http_input_is_converted_to_the_start_type_or_refused():
    assert convert_input({"x": 1, "label": "a"}, [Point]) == Point(1, "a")
    assert convert_input("plain", [Point, str]) == "plain"
    with pytest.raises(CodecError, match="Point"):
        convert_input({"x": "not a number"}, [Point])
