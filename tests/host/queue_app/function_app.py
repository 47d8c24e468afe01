"""Queue triggers and queue outputs for the host tests: a trigger that records each message in an
entity through the durable client, one that always fails (its messages end in the poison queue after
host.json's `maxDequeueCount` attempts, each counted in an entity), and a chain through queue outputs:
HTTP -> `incoming` -> (`Out` list) `split` -> (`$return`) `done`."""

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
@app.durable_client_input(client_name="client")
async def always_fails(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    await client.signal_entity(df.EntityId("Seen", msg.get_body().decode()), "add", msg.dequeue_count)
    raise RuntimeError(f"cannot handle {msg.get_body().decode()}")


@app.route(route="enqueue", methods=["POST"])
@app.queue_output(arg_name="out", queue_name="incoming", connection="AzureWebJobsStorage")
def enqueue(req: func.HttpRequest, out: func.Out[str]) -> func.HttpResponse:
    out.set(req.get_body().decode())
    return func.HttpResponse("queued", status_code=202)


@app.queue_trigger(arg_name="msg", queue_name="incoming", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="parts", queue_name="split", connection="AzureWebJobsStorage")
@app.blob_output(arg_name="copy", path="copies/{id}", connection="AzureWebJobsStorage")
def fan_out(msg: func.QueueMessage, parts: func.Out[list[str]], copy: func.Out[str]) -> None:
    item = json.loads(msg.get_body())
    parts.set([json.dumps({"key": item["key"], "value": value}) for value in item["values"]])
    copy.set("dropped by the local host")


@app.queue_trigger(arg_name="msg", queue_name="split", connection="AzureWebJobsStorage")
@app.queue_output(arg_name="$return", queue_name="done", connection="AzureWebJobsStorage")
def doubled(msg: func.QueueMessage) -> str:
    item = json.loads(msg.get_body())
    return json.dumps({"key": item["key"], "value": item["value"] * 2})


@app.queue_trigger(arg_name="msg", queue_name="done", connection="AzureWebJobsStorage")
@app.durable_client_input(client_name="client")
async def record_done(msg: func.QueueMessage, client: df.DurableOrchestrationClient) -> None:
    item = json.loads(msg.get_body())
    await client.signal_entity(df.EntityId("Seen", item["key"]), "add", item["value"])


@app.entity_trigger(context_name="context")
def Seen(context: df.DurableEntityContext) -> None:  # noqa: N802 - the entity's name
    context.set_state([*context.get_state(list), context.get_input()])
