"""Queue triggers for the host tests: one that records each message in an entity through the durable
client, and one that always fails (its messages end in the poison queue)."""

import json

import azure.durable_functions as df
import azure.functions as func

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)


@app.queue_trigger(arg_name="msg", queue_name="%WORK_QUEUE%", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def on_work(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    item = json.loads(msg.get_body().decode("utf-8"))
    await client.signal_entity(df.EntityId("Seen", item["key"]), "add", item["value"])


@app.queue_trigger(arg_name="msg", queue_name="always-fails", connection="AzureWebJobsStorage")
def always_fails(msg: func.QueueMessage) -> None:
    raise RuntimeError(f"cannot handle {msg.get_body().decode()}")


@app.entity_trigger(context_name="context")
def Seen(context: df.DurableEntityContext) -> None:  # noqa: N802 - the entity's name
    context.set_state([*context.get_state(list), context.get_input()])
