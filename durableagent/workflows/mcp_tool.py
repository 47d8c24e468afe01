"""A workflow as an MCP tool (beyond Microsoft, whose Python package has none): function
`mcptool-{workflow}`, tool name the workflow's name, described by its description.

Its properties come from the start executor's input type: a Pydantic model or dataclass gives one
property per field (required when it has no default; lists as arrays), anything else one `input`
property (a string for `str`). A call starts an instance and waits, within the app's polling
timeout, until it ends or asks a person: the result is the output (text as is, anything else as
JSON); a wait for a person is a result that says so with the request and the respond route's path
(the call does not fail: the workflow is fine, it is waiting); a failed instance, or one still
running at the timeout, raises, which the MCP extension returns as an `isError` result naming it.
With a progress token, the workflow's events go to the client as progress while it runs.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from agent_framework import Workflow
from pydantic import TypeAdapter

from .._mcp_tools import MCP_PROGRESS, function_name
from .codec import CodecError, convert_input, encode, input_types_of
from .orchestrator import function_name as orchestrator_name
from .routes import TERMINAL, Cursor, follow

logger = logging.getLogger(__name__)
INPUT = "input"
_JSON_TYPES = {"string", "integer", "number", "boolean", "object"}


def _property(name: str, schema: dict[str, Any], required: bool) -> dict[str, Any]:
    kind = schema.get("type")
    is_array = kind == "array"
    if is_array:
        kind = (schema.get("items") or {}).get("type")
    return {
        "propertyName": name,
        "propertyType": kind if kind in _JSON_TYPES else "object",
        "description": schema.get("description") or schema.get("title") or "",
        "isRequired": required,
        "isArray": is_array,
    }


def tool_properties(workflow: Workflow) -> tuple[list[dict[str, Any]], bool]:
    """(MCP tool properties, whether the arguments are the input's fields) for the start executor."""
    types = input_types_of(list(workflow.get_start_executor().input_types))
    structured = [t for t in types if t is not str]
    if len(types) == 1 and structured:
        try:
            schema = TypeAdapter(structured[0]).json_schema()
        except Exception:
            schema = {}
        if schema.get("type") == "object" and schema.get("properties"):
            required = set(schema.get("required") or [])
            props = [_property(n, s, n in required) for n, s in schema["properties"].items()]
            return props, True
    kind = "string" if str in types else "object"
    return [
        {
            "propertyName": INPUT,
            "propertyType": kind,
            "description": "The workflow's input.",
            "isRequired": True,
            "isArray": False,
        }
    ], False


def workflow_input(workflow: Workflow, fields: bool, context: str) -> Any:
    """The start executor's input from one call's invocation context; ValueError naming the problem."""
    try:
        parsed = json.loads(context)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"Invalid MCP context format: {exc}") from exc
    arguments = parsed.get("arguments") if isinstance(parsed, dict) else None
    arguments = arguments if isinstance(arguments, dict) else {}
    raw = arguments if fields else arguments.get(INPUT)
    try:
        return convert_input(raw, input_types_of(list(workflow.get_start_executor().input_types)))
    except CodecError as exc:
        raise ValueError(f"arguments do not fit the workflow's input: {exc}") from None


def _summary(chunk: str) -> str | None:
    """One progress line for an event-stream chunk (None for events not worth a line)."""
    kind, data = "", {}
    for line in chunk.splitlines():
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: "):
            data = json.loads(line[6:])
    if kind == "agent_update":
        return data.get("text") or None
    if kind in ("executor_invoked", "executor_completed", "executor_failed"):
        return f"{kind.replace('_', ' ')}: {data.get('executor')}"
    if kind == "request_info":
        return f"waiting for a person: request {data.get('requestId')} from {data.get('sourceExecutor')}"
    if kind == "status":
        return f"workflow {str(data.get('runtimeStatus')).lower()}"
    return None


async def run_workflow_call(
    client: Any, streams: Any, name: str, workflow: Workflow, fields: bool, context: str, timeout: float
) -> str:
    value = workflow_input(workflow, fields, context)
    instance_id = await client.start_new(orchestrator_name(name), None, {"input": encode(value)})
    progress = MCP_PROGRESS.get()
    if progress is not None:
        async for chunk in follow(client, streams, name, instance_id, Cursor(), timeout):
            line = _summary(chunk)
            if line:
                try:
                    await progress(line)
                except Exception as exc:  # a client that went away must not fail the call
                    logger.debug("MCP progress for %s not sent: %s", instance_id, exc)
            if "event: request_info" in chunk:
                break
    deadline = time.monotonic() + timeout
    interval = 0.02
    while True:
        status = await client.get_status(instance_id)
        runtime = status.runtime_status.value if status.runtime_status is not None else None
        custom = status.custom_status if isinstance(status.custom_status, dict) else {}
        if runtime == "Completed":
            output = status.output
            return output if isinstance(output, str) else json.dumps(output)
        if runtime in TERMINAL:
            raise RuntimeError(f"workflow {name!r} instance {instance_id} {runtime}: {status.output}")
        pending = custom.get("pendingRequests") or []
        if pending:
            lines = [f"Workflow {name!r} (instance {instance_id}) is waiting for a person."]
            for request in pending:
                lines.append(
                    f"Request {request['requestId']} from {request.get('sourceExecutor')}: "
                    f"{json.dumps(request.get('requestData'))}; answer with POST "
                    f"/api/workflow/{name}/respond/{instance_id}/{request['requestId']} and a JSON body."
                )
            return "\n".join(lines)
        if time.monotonic() + interval > deadline:
            raise TimeoutError(
                f"workflow {name!r} instance {instance_id} is still running after {timeout:g} s; "
                f"see /api/workflow/{name}/status/{instance_id}"
            )
        await asyncio.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def register_workflow_tool(
    app: Any, name: str, workflow: Workflow, streams: Any, timeout: Callable[[], float]
) -> None:
    """Register `mcptool-{name}` on `app`: an MCP tool trigger with a durable client."""
    properties, fields = tool_properties(workflow)

    async def mcp_tool(context: str, client: Any) -> str:
        return await run_workflow_call(client, streams, name, workflow, fields, context, timeout())

    mcp_tool.__name__ = mcp_tool.__qualname__ = function_name(name).replace("-", "_")
    app.function_name(function_name(name))(
        app.mcp_tool_trigger(
            arg_name="context",
            tool_name=name,
            description=workflow.description or f"Run the {name} workflow",
            tool_properties=json.dumps(properties),
        )(app.durable_client_input(client_name="client")(mcp_tool))
    )
    logger.info("registered workflow %s as MCP tool %s", name, function_name(name))
