"""MCP tool triggers (`@app.mcp_tool_trigger`, `@app.mcp_tool()`): the app's tools, served by the MCP
endpoint (`mcp.py`) as the Functions MCP extension serves them.

`tools/list` gives each tool its input schema built from the binding's `toolProperties` (type, or
`array` of it with `isArray`, `enum` from `enumValues`, the description, and `required`).
`tools/call` checks the required properties first (an MCP `InvalidParams` error listing the missing
ones, as the extension answers), then calls the function with the extension's invocation context
(`{"name", "arguments", "sessionid", "clientinfo", "transport"}`). What it returns becomes one text
block (the worker's string of it), or, with `useResultSchema` (`mcp_tool()` sets it for MCP
content return types), the content and structured content of the worker's result envelope. A
function that raises gives an `isError` result naming the exception, which a model can read.

Beyond the extension: when the client sends a progress token, a durableagent agent tool's text
chunks reach it as MCP progress notifications while the turn runs (`_progress`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from mcp import types
from mcp.shared.exceptions import MCPError

from durableagent._mcp_tools import MCP_PROGRESS

from ..errors import AppLoadError
from ..loader import TriggeredFunction
from .base import TriggerServices
from .mcp import Handler, McpKind, binding_json, invocation_context

log = logging.getLogger(__name__)

CALL_TOOL_RESULT = "call_tool_result"  # the envelope types the worker writes (McpConstants)
MULTI_CONTENT = "multi_content_result"
_SCHEMA_TYPES = ("string", "integer", "number", "boolean", "object")


@dataclass(frozen=True)
class McpTool:
    """One tool: its function and what `tools/list` says about it."""

    function: TriggeredFunction
    name: str
    description: str | None
    schema: dict[str, Any]
    required: tuple[str, ...]
    use_result_schema: bool = False
    meta: dict[str, Any] | None = field(default=None)

    @classmethod
    def parse(cls, function: TriggeredFunction) -> McpTool:
        """The tool of one function's binding; `AppLoadError` naming the function for one that
        cannot be served (no name, unreadable `toolProperties` or `metadata`)."""
        binding = function.trigger.get_dict_repr()
        name = binding.get("toolName")
        if not isinstance(name, str) or not name:
            raise AppLoadError(f"function {function.name}: mcpToolTrigger has no toolName")
        properties = binding_json(binding, "toolProperties", function.name, list) or []
        schema: dict[str, Any] = {"type": "object", "properties": {}}
        required: list[str] = []
        for prop in properties:
            prop_name = prop.get("propertyName") if isinstance(prop, dict) else None
            if not isinstance(prop_name, str) or not prop_name.strip():
                raise AppLoadError(f"function {function.name}: a toolProperties entry has no propertyName")
            kind = str(prop.get("propertyType") or "string").lower()
            if kind not in _SCHEMA_TYPES:
                raise AppLoadError(
                    f"function {function.name}: property {prop_name} has propertyType {kind!r} "
                    f"(one of {', '.join(_SCHEMA_TYPES)})"
                )
            item: dict[str, Any] = {"type": kind}
            if prop.get("enumValues"):
                item["enum"] = list(prop["enumValues"])
            entry = {"type": "array", "items": item} if prop.get("isArray") else item
            entry["description"] = prop.get("description") or ""
            schema["properties"][prop_name] = entry
            if prop.get("isRequired"):
                required.append(prop_name)
        if required:
            schema["required"] = required
        meta = binding_json(binding, "metadata", function.name, dict)
        return cls(
            function,
            name,
            binding.get("description") or None,
            schema,
            tuple(required),
            bool(binding.get("useResultSchema")),
            meta,
        )

    def listed(self) -> types.Tool:
        """The tool as `tools/list` shows it."""
        return types.Tool(
            name=self.name, description=self.description, inputSchema=self.schema, _meta=self.meta
        )

    def missing(self, arguments: dict[str, Any]) -> list[str]:
        """The required properties `arguments` gives no value."""
        return [name for name in self.required if arguments.get(name) is None]


class McpToolTriggers(McpKind):
    """The app's MCP tools, looked up by name without regard to case (as the extension does)."""

    binding_type = "mcpToolTrigger"

    def __init__(self, services: TriggerServices, tools: list[McpTool]) -> None:
        super().__init__(services)
        self.tools = {tool.name.lower(): tool for tool in tools}

    @classmethod
    def create(cls, functions: list[TriggeredFunction], services: TriggerServices) -> McpToolTriggers:
        tools: dict[str, McpTool] = {}
        for function in functions:
            tool = McpTool.parse(function)
            other = tools.get(tool.name.lower())
            if other is not None:
                raise AppLoadError(
                    f"function {function.name}: tool name {tool.name!r} is already taken by "
                    f"function {other.function.name}"
                )
            tools[tool.name.lower()] = tool
        return cls(services, list(tools.values()))

    def banner(self) -> list[str]:
        return [f"{t.function.name}: mcpToolTrigger (tool {t.name})" for t in self.tools.values()]

    def handlers(self) -> dict[str, Handler]:
        return {"on_list_tools": self.list_tools, "on_call_tool": self.call_tool}

    async def list_tools(self, ctx: Any, params: Any) -> types.ListToolsResult:
        """Every tool, in the app's order."""
        return types.ListToolsResult(tools=[tool.listed() for tool in self.tools.values()])

    async def call_tool(self, ctx: Any, params: types.CallToolRequestParams) -> types.CallToolResult:
        """One call of a tool's function; protocol errors for an unknown tool or missing arguments,
        an `isError` result for a function that fails."""
        tool = self.tools.get(params.name.lower())
        if tool is None:
            raise MCPError(types.INVALID_PARAMS, f"Unknown tool: '{params.name}'")
        arguments = dict(params.arguments or {})
        missing = tool.missing(arguments)
        if missing:
            raise MCPError(
                types.INVALID_PARAMS,
                "One or more required tool properties are missing values. Please provide: "
                + ", ".join(missing),
            )
        context = invocation_context(ctx, name=tool.name, arguments=arguments)
        progress = MCP_PROGRESS.set(_progress(ctx, params))
        try:
            value = await self.call(tool.function, context)
            return tool_result(value, tool.use_result_schema)
        except Exception as exc:
            log.warning("MCP tool %s (function %s) failed: %s", tool.name, tool.function.name, exc)
            text = f"An error occurred invoking '{tool.name}': {type(exc).__name__}: {exc}"
            return types.CallToolResult(content=[types.TextContent(type="text", text=text)], isError=True)
        finally:
            MCP_PROGRESS.reset(progress)


def _progress(ctx: Any, params: types.CallToolRequestParams) -> Callable[[str], Awaitable[None]] | None:
    """What durableagent's agent tools hand their turn's text chunks to (`MCP_PROGRESS`), when the
    client asked for progress: each chunk is one `notifications/progress` with the chunk as its
    message and the count so far as its progress (the total is unknown)."""
    meta = dict(params.meta or {})
    if meta.get("progress_token", meta.get("progressToken")) is None:
        return None
    sent = 0

    async def report(text: str) -> None:
        nonlocal sent
        sent += 1
        await ctx.session.report_progress(sent, None, text)

    return report


def tool_result(value: str | bytes, use_result_schema: bool) -> types.CallToolResult:
    """The result the extension makes of what the worker returned: one text block of it, or with
    `useResultSchema` the worker's envelope `{"type", "content", "structuredContent"}` opened
    (ValueError for an envelope it cannot read, which the caller reports as a failed call)."""
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else value
    if not use_result_schema:
        return types.CallToolResult(content=[types.TextContent(type="text", text=text)])
    envelope = json.loads(text)
    if not isinstance(envelope, dict) or not isinstance(envelope.get("content"), str):
        raise ValueError("the function's return value is not a tool result envelope")
    kind = str(envelope.get("type") or "").lower()
    if kind == CALL_TOOL_RESULT:
        return types.CallToolResult.model_validate_json(envelope["content"])
    content = json.loads(envelope["content"])
    blocks = content if kind == MULTI_CONTENT else [content]
    if not blocks:
        raise ValueError("No content items were produced from the McpToolResult.")
    structured = envelope.get("structuredContent")
    result: dict[str, Any] = {"content": blocks}
    structured = json.loads(structured) if structured else None
    if isinstance(structured, dict):  # MCP's structured content is an object; anything else is dropped
        result["structuredContent"] = structured
    return types.CallToolResult.model_validate(result)
