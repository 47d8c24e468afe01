"""Workflows for the workflow host tests: a failing executor, a slow step to kill the host in, a
request that times out, and a hand-written orchestrator reaching a workflow's agent."""

import asyncio
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent, AgentExecutorResponse, Executor, WorkflowBuilder, WorkflowContext, handler
from pydantic import BaseModel

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient


class Check(Executor):
    @handler
    async def check(self, text: str, ctx: WorkflowContext[str]) -> None:
        ctx.set_state("checked", text)
        await ctx.send_message(text.upper())


class Explode(Executor):
    @handler
    async def explode(self, text: str, ctx: WorkflowContext[None, str]) -> None:
        raise ValueError(f"kaboom on {text}")


check = Check(id="check")
boom = WorkflowBuilder(name="boom", start_executor=check).add_edge(check, Explode(id="explode")).build()


class Pause(Executor):
    @handler
    async def pause(self, reply: AgentExecutorResponse, ctx: WorkflowContext[None, str]) -> None:
        await asyncio.sleep(1.5)  # long enough to kill the host in
        await ctx.yield_output(f"after pause: {reply.agent_response.text}")


echo = Agent(client=ScriptedChatClient(default="echo"), name="Echo", instructions="Repeat the user.")
pause = Pause(id="pause")
slow = WorkflowBuilder(name="slow", start_executor=echo, output_from=[pause]).add_edge(echo, pause).build()


class Answer(BaseModel):
    ok: bool


class Ask(Executor):
    @handler
    async def ask(self, text: str, ctx: WorkflowContext) -> None:
        await ctx.request_info(text, Answer)


ask = WorkflowBuilder(name="ask", start_executor=Ask(id="ask")).build()
approve = WorkflowBuilder(name="approve", start_executor=Ask(id="ask")).build()


@dataclass
class Greeting:
    name: str
    times: int = 1


class Greet(Executor):
    @handler
    async def greet(self, greeting: Greeting, ctx: WorkflowContext[None, str]) -> None:
        await ctx.yield_output(" ".join([f"hello {greeting.name}"] * greeting.times))


greet = WorkflowBuilder(name="greet", description="Greets someone.", start_executor=Greet(id="greet")).build()

app = AgentFunctionApp(workflows=[boom, slow], http_auth_level=func.AuthLevel.ANONYMOUS)
app.add_workflow(ask, request_timeout=timedelta(seconds=1))
app.add_workflow(greet, enable_mcp_tool_trigger=True)
app.add_workflow(approve, enable_mcp_tool_trigger=True)


@app.orchestration_trigger(context_name="context")
def ask_echo(context: df.DurableOrchestrationContext) -> Generator[Any, Any, str]:
    agent = app.get_agent(context, "Echo", workflow_name="slow")
    response = yield agent.run(context.get_input(), session=context.instance_id)
    return response.text


@app.route(route="start/ask_echo", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_ask_echo(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    instance_id = await client.start_new("ask_echo", None, req.get_body().decode())
    return client.create_check_status_response(req, instance_id)
