"""MCP trigger functions written with each decorator of `azure-functions`, for the host's MCP tests:
a tool with explicit `toolProperties` (the trigger gets the extension's JSON context), tools whose
properties `mcp_tool()` infers (arrays, optional ones, one with structured content), a tool that
fails, a slow tool (cancellation), a resource, a resource template and a prompt. A durable client
lets one tool record its calls in an entity (each call applied once)."""

import asyncio
import json

import azure.durable_functions as df
import azure.functions as func
from azure.functions.decorators.mcp import PromptArgument

app = df.DFApp(http_auth_level=func.AuthLevel.ANONYMOUS)

ECHO_PROPERTIES = [
    {"propertyName": "text", "propertyType": "string", "description": "what to echo", "isRequired": True},
    {"propertyName": "times", "propertyType": "integer", "description": "how often", "isRequired": False},
    {"propertyName": "tags", "propertyType": "string", "isArray": True, "description": "labels"},
    {"propertyName": "mood", "propertyType": "string", "enumValues": ["calm", "loud"], "description": ""},
]


@app.mcp_tool_trigger(
    arg_name="context",
    tool_name="echo",
    description="Echo the text back, with the whole invocation context.",
    tool_properties=json.dumps(ECHO_PROPERTIES),
)
def echo(context: str) -> str:
    content = json.loads(context)
    return json.dumps({"echo": content["arguments"]["text"], "context": content})


@app.mcp_tool()
def repeat(word: str, times: int = 2, separator: str | None = None) -> str:
    """Repeat a word."""
    return (separator or "").join([word] * times)


@app.mcp_tool()
def total(numbers: list[int]) -> int:
    """Add numbers up."""
    return sum(numbers)


@app.mcp_tool(use_result_schema=True)
def weather(city: str) -> dict:
    """Weather as structured content."""
    return {"city": city, "degrees": 21}


@app.mcp_tool()
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"exploded: {reason}")


CANCELLED: list[float] = []  # calls of `slow` cancelled by their client (read by the tests in-process)


@app.mcp_tool()
async def slow(seconds: float) -> str:
    """Takes its time."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        CANCELLED.append(seconds)
        raise
    return "done"


@app.mcp_tool_trigger(arg_name="context", tool_name="count", description="Count calls in an entity.")
@app.durable_client_input(client_name="client")
async def count(context: str, client: df.DurableOrchestrationClient) -> str:
    key = json.loads(context)["arguments"].get("key", "k")
    await client.signal_entity(df.EntityId("Tally", key), "add", 1)
    return "counted"


@app.entity_trigger(context_name="context")
def Tally(context: df.DurableEntityContext) -> None:
    context.set_state((context.get_state(lambda: 0) or 0) + context.get_input())


@app.mcp_resource_trigger(
    arg_name="context",
    uri="file://readme.md",
    resource_name="readme",
    description="The readme",
    mime_type="text/markdown",
)
def readme(context: str) -> str:
    return "# Read me"


@app.mcp_resource_trigger(
    arg_name="context", uri="notes://{name}", resource_name="note", mime_type="text/plain"
)
def note(context: str) -> str:
    return "note at " + json.loads(context)["uri"]


@app.mcp_prompt_trigger(
    arg_name="context",
    prompt_name="greet",
    description="Greet someone",
    prompt_arguments=[PromptArgument("name", "who to greet", True), PromptArgument("style", "how")],
)
def greet(context) -> str:
    return f"Say hello to {context.arguments['name']} ({context.arguments.get('style') or 'plain'})"
