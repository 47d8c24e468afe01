"""`mcp`: an app's MCP tools, resources and prompts, listed or called over the transport a real MCP
client uses (`harness/mcp_client.py`), so what works here works from MCP Inspector or an editor.

    python -m harness mcp                         # list
    python -m harness mcp call TOOL '{"a": 1}'    # call one tool
    python -m harness mcp read URI                # read one resource
    python -m harness mcp prompt NAME '{"a": "x"}'
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from harness.client import ClientError

from .base import EXIT_NOT_COMPLETED, PROG, Command, UsageError, fail, print_json, stdout_console
from .options import remote_options

if TYPE_CHECKING:
    from harness.mcp_client import Listing, McpTarget

ACTIONS = ("list", "call", "read", "prompt")
USAGE = f"{PROG} mcp [list] | call TOOL [JSON] | read URI | prompt NAME [JSON]"


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "words",
        nargs="*",
        metavar="ACTION",
        help="list (default) | call TOOL [JSON_ARGUMENTS] | read URI | prompt NAME [JSON_ARGUMENTS]",
    )
    remote_options(parser, True)
    parser.add_argument(
        "--sse", action="store_true", help="use the older SSE transport (/runtime/webhooks/mcp/sse)"
    )
    parser.add_argument("--json", action="store_true", help="print the MCP result as JSON")


def parse_words(words: list[str]) -> tuple[str, str | None, dict[str, Any]]:
    """(action, its name or URI, its JSON arguments) of the command's words; `UsageError` naming the
    problem for anything else."""
    action, rest = (words[0], words[1:]) if words else ("list", [])
    if action not in ACTIONS:
        raise UsageError(f"unknown mcp action {action!r}; usage: {USAGE}")
    if action == "list":
        if rest:
            raise UsageError(f"mcp list takes no arguments, got {' '.join(rest)!r}")
        return action, None, {}
    limit = 1 if action == "read" else 2
    if not rest or len(rest) > limit:
        raise UsageError(f"usage: {USAGE}")
    arguments: dict[str, Any] = {}
    if len(rest) == 2:
        try:
            arguments = json.loads(rest[1])
        except ValueError as exc:
            raise UsageError(f"the arguments {rest[1]!r} are not JSON: {exc}") from None
        if not isinstance(arguments, dict):
            raise UsageError(
                f'the arguments must be a JSON object, like \'{{"query": "hi"}}\', got {rest[1]!r}'
            )
    return action, rest[0], arguments


def run(args: argparse.Namespace) -> int:
    from harness.mcp_client import McpTarget  # the MCP SDK: loaded by this command only

    action, name, arguments = parse_words(args.words)
    target = McpTarget(args.url, args.key, sse=args.sse)
    if action == "list":
        listing = asyncio.run(target.listing())
        if args.json:
            print_json(_listing_json(listing))
        else:
            _print_listing(listing, target.url)
        return 0
    assert name is not None
    if action == "call":
        result = asyncio.run(target.call(name, arguments))
        return _print_tool_result(result, args.json, name)
    if action == "read":
        read = asyncio.run(_read(target, name))
        if args.json:
            print_json(read.model_dump(mode="json", by_alias=True, exclude_none=True))
        for contents in [] if args.json else read.contents:
            print(
                getattr(contents, "text", None)
                or f"<{getattr(contents, 'mime_type', None) or 'blob'}, base64>"
            )
        return 0
    prompt = asyncio.run(_prompt(target, name, arguments))
    if args.json:
        print_json(prompt.model_dump(mode="json", by_alias=True, exclude_none=True))
    for message in [] if args.json else prompt.messages:
        print(f"{message.role}: {getattr(message.content, 'text', message.content)}")
    return 0


async def _read(target: McpTarget, uri: str) -> Any:
    async with target.session() as session:
        return await _protocol(session.read_resource(uri), uri)


async def _prompt(target: McpTarget, name: str, arguments: dict[str, Any]) -> Any:
    strings = {
        key: value if isinstance(value, str) else json.dumps(value) for key, value in arguments.items()
    }
    async with target.session() as session:
        return await _protocol(session.get_prompt(name, strings), name)


async def _protocol(call: Any, what: str) -> Any:
    from mcp.shared.exceptions import MCPError

    try:
        return await call
    except MCPError as exc:
        raise ClientError(f"{what}: {exc.message}") from None


def _print_tool_result(result: Any, as_json: bool, tool: str) -> int:
    if as_json:
        print_json(result.model_dump(mode="json", by_alias=True, exclude_none=True))
    else:
        for block in result.content:
            print(
                getattr(block, "text", None) or json.dumps(block.model_dump(mode="json", exclude_none=True))
            )
        if result.structured_content is not None:
            print(json.dumps(result.structured_content, indent=2, ensure_ascii=False))
    if result.is_error:
        text = " ".join(getattr(block, "text", "") for block in result.content)
        return fail(f"tool {tool} failed: {text}", EXIT_NOT_COMPLETED)
    return 0


def _listing_json(listing: Listing) -> dict[str, Any]:
    def dump(items: list[Any]) -> list[Any]:
        return [item.model_dump(mode="json", by_alias=True, exclude_none=True) for item in items]

    return {
        "tools": dump(listing.tools),
        "resources": dump(listing.resources),
        "resourceTemplates": dump(listing.templates),
        "prompts": dump(listing.prompts),
    }


def _print_listing(listing: Listing, url: str) -> None:
    console = stdout_console()
    console.print(f"MCP endpoint: {escape(url)}")
    tools = Table(title="Tools", title_justify="left")
    tools.add_column("Tool", style="bold", no_wrap=True)
    tools.add_column("Arguments (* required)")
    tools.add_column("Description")
    for tool in listing.tools:
        schema = tool.input_schema or {}
        required = set(schema.get("required") or [])
        params = [
            f"{name}{'*' if name in required else ''}: {_type_text(spec)}"
            for name, spec in (schema.get("properties") or {}).items()
        ]
        tools.add_row(escape(tool.name), escape(", ".join(params)), escape(tool.description or ""))
    console.print(tools if listing.tools else "No tools.")
    if listing.resources or listing.templates:
        resources = Table(title="Resources", title_justify="left")
        resources.add_column("URI", style="bold", no_wrap=True)
        resources.add_column("Name")
        resources.add_column("MIME type")
        for resource in listing.resources:
            resources.add_row(
                escape(str(resource.uri)), escape(resource.name), escape(resource.mime_type or "")
            )
        for template in listing.templates:
            resources.add_row(
                escape(template.uri_template), escape(template.name), escape(template.mime_type or "")
            )
        console.print(resources)
    if listing.prompts:
        prompts = Table(title="Prompts", title_justify="left")
        prompts.add_column("Prompt", style="bold", no_wrap=True)
        prompts.add_column("Arguments (* required)")
        prompts.add_column("Description")
        for prompt in listing.prompts:
            names = [f"{a.name}{'*' if a.required else ''}" for a in prompt.arguments or []]
            prompts.add_row(escape(prompt.name), escape(", ".join(names)), escape(prompt.description or ""))
        console.print(prompts)


def _type_text(spec: dict[str, Any]) -> str:
    if spec.get("type") == "array":
        return f"{_type_text(spec.get('items') or {})}[]"
    if spec.get("enum"):
        return "|".join(map(str, spec["enum"]))
    return str(spec.get("type") or "any")


MCP = Command(
    "mcp",
    "list or call the app's MCP tools, resources and prompts",
    _arguments,
    run,
    description=f"Talk to the app's MCP endpoint (/runtime/webhooks/mcp) as an MCP client does: {USAGE}.",
    finds_app=True,
)
