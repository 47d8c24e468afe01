"""Virtual time on the local host: a daily 9 o'clock timer trigger, an orchestration that waits on a
durable timer, one whose activity is retried with an hour of back-off, and an agent whose idle
sessions expire after seven days."""

from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient

agent = Agent(client=ScriptedChatClient(default={"text": "noted"}), name="Memo", instructions="Take notes.")
app = AgentFunctionApp(agents=[agent], session_ttl=timedelta(days=7))
FAILURES: dict[str, int] = {}  # attempts failed so far, per instance (one host process per test)


@app.timer_trigger(schedule="0 0 9 * * *", arg_name="timer")
@app.durable_client_input(client_name="client")
async def at_nine(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    await client.signal_entity(df.EntityId("Ticks", "nine"), "add", 1)


@app.entity_trigger(context_name="context")
def Ticks(context: df.DurableEntityContext) -> None:  # noqa: N802 - the entity's name
    context.set_state(context.get_state(lambda: 0) + context.get_input())


@app.orchestration_trigger(context_name="context")
def waits(context: df.DurableOrchestrationContext) -> Any:
    """Wait `hours` on a durable timer; return when it started and when it woke."""
    started = context.current_utc_datetime
    yield context.create_timer(started + timedelta(hours=float(context.get_input())))
    return {"started": started.isoformat(), "woke": context.current_utc_datetime.isoformat()}


@app.orchestration_trigger(context_name="context")
def retries(context: df.DurableOrchestrationContext) -> Any:
    """An activity that fails twice, retried an hour after each failure."""
    started = context.current_utc_datetime
    options = df.RetryOptions(first_retry_interval_in_milliseconds=3_600_000, max_number_of_attempts=3)
    result = yield context.call_activity_with_retry("flaky", options, context.instance_id)
    return {"result": result, "hours": (context.current_utc_datetime - started).total_seconds() / 3600}


@app.activity_trigger(input_name="key")
def flaky(key: str) -> str:
    FAILURES[key] = FAILURES.get(key, 0) + 1
    if FAILURES[key] <= 2:
        raise RuntimeError(f"attempt {FAILURES[key]} fails")
    return f"worked at attempt {FAILURES[key]}"
