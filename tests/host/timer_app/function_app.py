"""Timer triggers for the host tests: one every second that signals an entity through the durable
client, and one that fires at start-up (and then only every day)."""

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.timer_trigger(schedule="* * * * * *", arg_name="timer")
@app.durable_client_input(client_name="client")
async def every_second(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    await client.signal_entity(df.EntityId("Ticks", "second"), "add", 1)


@app.timer_trigger(schedule="%STARTUP_SCHEDULE%", arg_name="timer", run_on_startup=True)
@app.durable_client_input(client_name="client")
async def at_start(timer: func.TimerRequest, client: df.DurableOrchestrationClient) -> None:
    await client.signal_entity(df.EntityId("Ticks", "start"), "add", 1)


@app.entity_trigger(context_name="context")
def Ticks(context: df.DurableEntityContext) -> None:  # noqa: N802 - the entity's name
    context.set_state(context.get_state(lambda: 0) + context.get_input())
