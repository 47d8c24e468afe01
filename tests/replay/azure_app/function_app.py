"""The app whose deployed task hub `test_azure_storage_export.py` writes by hand: a release pipeline
that prepares notes (an activity), waits five minutes (a timer) and for an approval (an external
event), verifies in a sub-orchestration, has the WriterAgent announce the release (an agent turn: an
entity call to its session), then publishes (an activity that fails in the recorded run); and a
countdown that continues as new."""

from datetime import timedelta
from typing import Any

import azure.durable_functions as df
from agent_framework import Agent

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient

writer = Agent(
    client=ScriptedChatClient(default={"text": "noted"}), name="WriterAgent", instructions="Write."
)
app = AgentFunctionApp(agents=[writer])


@app.orchestration_trigger(context_name="context")
def release(context: df.DurableOrchestrationContext) -> Any:
    spec = context.get_input()
    notes = yield context.call_activity("prepare", spec["version"])
    yield context.create_timer(context.current_utc_datetime + timedelta(minutes=5))
    approval = yield context.wait_for_external_event("Approval")
    verdict = yield context.call_sub_orchestrator("verify", len(notes), f"{context.instance_id}-verify")
    agent = app.get_agent(context, "WriterAgent")
    reply = yield agent.run(
        f"Announce {spec['version']} ({verdict}, approved by {approval['by']})",
        session=agent.get_session(spec["session"]),
    )
    yield context.call_activity("publish", reply.text)
    return {"published": spec["version"]}


@app.orchestration_trigger(context_name="context")
def verify(context: df.DurableOrchestrationContext) -> Any:
    size = context.get_input()
    return "verified" if size > 0 else "empty"


@app.orchestration_trigger(context_name="context")
def countdown(context: df.DurableOrchestrationContext) -> Any:
    n = context.get_input()
    yield context.call_activity("prepare", str(n))
    if n > 0:
        context.continue_as_new(n - 1)
        return None
    return "done"


@app.activity_trigger(input_name="version")
def prepare(version: str) -> str:
    return f"notes for {version}"


@app.activity_trigger(input_name="text")
def publish(text: str) -> str:
    raise RuntimeError("the release feed refused the post")
