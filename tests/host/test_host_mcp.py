"""MCP trigger functions on the local host, called through the official `mcp` client package over
Streamable HTTP and SSE, as MCP Inspector or an editor would."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import httpx2
import pytest
from mcp import Client, ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

from harness.answers import ClientError
from harness.host import LocalHost
from harness.mcp_client import McpTarget, serves_mcp

from .conftest import COUNTER_APP

MCP_APP = Path(__file__).resolve().parent / "mcp_app"


@pytest.fixture
async def mcp_host(azurite_connstr: str, hub: str) -> AsyncIterator[LocalHost]:
    async with LocalHost(MCP_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


@asynccontextmanager
async def connected(host: LocalHost, mode: str = "legacy") -> AsyncIterator[Client]:
    """A client as MCP Inspector and today's editors connect: the initialize handshake, a session."""
    async with Client(f"{host.url}/runtime/webhooks/mcp", mode=mode) as client:
        yield client


async def test_tools_are_listed_with_the_schemas_of_their_properties(mcp_host: LocalHost):
    async with connected(mcp_host) as client:
        tools = {tool.name: tool for tool in (await client.list_tools()).tools}
    assert {"echo", "repeat", "total", "weather", "explode", "slow", "count"} <= set(tools)
    echo = tools["echo"]
    assert echo.description == "Echo the text back, with the whole invocation context."
    assert echo.input_schema == {
        "type": "object",
        "properties": {
            "text": {"type": "string", "description": "what to echo"},
            "times": {"type": "integer", "description": "how often"},
            "tags": {"type": "array", "items": {"type": "string"}, "description": "labels"},
            "mood": {"type": "string", "enum": ["calm", "loud"], "description": ""},
        },
        "required": ["text"],
    }
    assert tools["total"].input_schema["properties"]["numbers"] == {
        "type": "array",
        "items": {"type": "integer"},
        "description": "",
    }
    assert tools["repeat"].input_schema["required"] == ["word"]
    assert tools["repeat"].description == "Repeat a word."


async def test_a_tool_gets_the_extension_context_and_returns_text(mcp_host: LocalHost):
    async with connected(mcp_host) as client:
        result = await client.call_tool("echo", {"text": "hi", "tags": ["a"]})
    assert not result.is_error
    body = json.loads(result.content[0].text)
    assert body["echo"] == "hi"
    context = body["context"]
    assert context["name"] == "echo"
    assert context["arguments"] == {"text": "hi", "tags": ["a"]}
    assert context["transport"]["name"] == "http-streamable"
    assert context["sessionid"] and context["sessionid"] == context["transport"]["sessionId"]
    assert context["clientinfo"]["name"] == "mcp"


async def test_tools_written_with_mcp_tool_get_their_arguments(mcp_host: LocalHost):
    async with connected(mcp_host) as client:
        repeat = await client.call_tool("repeat", {"word": "ab", "times": 3, "separator": "-"})
        total = await client.call_tool("total", {"numbers": [1, 2, 3]})
        weather = await client.call_tool("weather", {"city": "Oslo"})
    assert repeat.content[0].text == "ab-ab-ab"
    assert total.content[0].text == "6"
    assert weather.structured_content == {"city": "Oslo", "degrees": 21}
    assert json.loads(weather.content[0].text) == {"city": "Oslo", "degrees": 21}


async def test_a_client_of_the_2026_protocol_without_a_session_is_served_too(mcp_host: LocalHost):
    async with connected(mcp_host, mode="auto") as client:
        result = await client.call_tool("repeat", {"word": "z", "times": 2})
        context = json.loads((await client.call_tool("echo", {"text": "x"})).content[0].text)["context"]
    assert result.content[0].text == "zz"
    assert context["sessionid"] is None


async def test_a_failing_tool_is_an_error_result_naming_the_exception(mcp_host: LocalHost):
    async with connected(mcp_host) as client:
        result = await client.call_tool("explode", {"reason": "boom"})
    assert result.is_error
    assert "ValueError: exploded: boom" in result.content[0].text


async def test_unknown_tools_and_missing_arguments_are_invalid_params(mcp_host: LocalHost):
    async with connected(mcp_host) as client:
        with pytest.raises(MCPError) as unknown:
            await client.call_tool("nope", {})
        with pytest.raises(MCPError) as missing:
            await client.call_tool("echo", {"times": 2})
        assert (await client.call_tool("repeat", {"word": "x"})).content[0].text == "xx"  # session still fine
    assert unknown.value.code == -32602 and "nope" in unknown.value.message
    assert missing.value.code == -32602 and "Please provide: text" in missing.value.message


async def test_resources_templates_and_prompts(mcp_host: LocalHost):
    async with connected(mcp_host) as client:
        resources = (await client.list_resources()).resources
        templates = (await client.list_resource_templates()).resource_templates
        readme = await client.read_resource("file://readme.md")
        note = await client.read_resource("notes://shopping")
        prompts = (await client.list_prompts()).prompts
        greeting = await client.get_prompt("greet", {"name": "Ada"})
        with pytest.raises(MCPError) as missing:
            await client.get_prompt("greet", {})
        with pytest.raises(MCPError) as unknown:
            await client.read_resource("file://nothing")
    assert [(r.name, str(r.uri), r.mime_type) for r in resources] == [
        ("readme", "file://readme.md", "text/markdown")
    ]
    assert [t.uri_template for t in templates] == ["notes://{name}"]
    assert readme.contents[0].text == "# Read me"
    assert note.contents[0].text == "note at notes://shopping"
    assert [(a.name, a.required) for a in prompts[0].arguments] == [("name", True), ("style", False)]
    assert greeting.messages[0].role == "user"
    assert greeting.messages[0].content.text == "Say hello to Ada (plain)"
    assert missing.value.code == -32602 and "name" in missing.value.message
    assert unknown.value.code == -32602


async def test_the_sse_transport_serves_the_same_tools(mcp_host: LocalHost):
    async with sse_client(f"{mcp_host.url}/runtime/webhooks/mcp/sse") as (read, write):
        async with ClientSession(read, write) as session:
            await session.initialize()
            tools = await session.list_tools()
            result = await session.call_tool("echo", {"text": "over sse"})
            await session.send_ping()
    assert "echo" in {tool.name for tool in tools.tools}
    body = json.loads(result.content[0].text)
    assert body["echo"] == "over sse"
    assert body["context"]["transport"]["name"] == "http-sse"
    assert body["context"]["sessionid"]


async def test_a_call_the_client_cancels_is_cancelled_and_the_session_goes_on(mcp_host: LocalHost):
    app_module = sys.modules["function_app"]
    async with connected(mcp_host) as client:
        with anyio.move_on_after(0.5) as scope:
            await client.call_tool("slow", {"seconds": 60})
        assert scope.cancelled_caught
        deadline = time.monotonic() + 10
        while 60 not in app_module.CANCELLED and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert 60 in app_module.CANCELLED
        assert (await client.call_tool("slow", {"seconds": 0})).content[0].text == "done"


async def test_keys_when_enforced(azurite_connstr: str, hub: str, http):
    async with LocalHost(
        MCP_APP, port=0, storage=azurite_connstr, hub_name=hub, enforce_keys=True, function_key="sekrit"
    ) as host:
        url = f"{host.url}/runtime/webhooks/mcp"
        async with http.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "ping"}) as resp:
            assert resp.status == 401
            assert "mcp_extension" in (await resp.json())["error"]
        async with http.get(f"{url}/sse?code=wrong") as resp:
            assert resp.status == 401
        keyed = streamable_http_client(
            url, http_client=httpx2.AsyncClient(headers={"x-functions-key": "sekrit"})
        )
        async with Client(keyed, mode="legacy") as client:
            assert (await client.call_tool("repeat", {"word": "k"})).content[0].text == "kk"
        with pytest.raises(ClientError, match="wants a key"):
            await McpTarget(host.url).listing()
        with pytest.raises(ClientError, match="wants a key"):
            await McpTarget(host.url, key="wrong", sse=True).listing()
        keyed_sse = await McpTarget(host.url, key="sekrit", sse=True).call("repeat", {"word": "s"})
        assert keyed_sse.content[0].text == "ss"


async def test_bad_requests_get_4xx_answers(mcp_host: LocalHost, http):
    url = f"{mcp_host.url}/runtime/webhooks/mcp"
    headers = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
    async with http.post(url, data=b"{not json", headers=headers) as resp:
        assert 400 <= resp.status < 500
    async with http.post(
        url,
        json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
        headers={**headers, "mcp-session-id": "no-such-session"},
    ) as resp:
        assert resp.status == 404
    async with http.post(f"{url}/sse") as resp:
        assert resp.status == 405
        assert "GET" in (await resp.json())["error"]
    async with http.post(
        f"{url}/message?session_id=nothing", json={"jsonrpc": "2.0", "id": 1, "method": "ping"}
    ) as resp:
        assert 400 <= resp.status < 500


async def test_an_app_without_mcp_functions_has_no_endpoint(
    mcp_host: LocalHost, azurite_connstr: str, hub: str
):
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub + "c") as plain:
        with pytest.raises(ClientError, match="no MCP endpoint here"):
            await McpTarget(plain.url).listing()
        assert not await asyncio.to_thread(serves_mcp, plain.url)
    assert await asyncio.to_thread(serves_mcp, mcp_host.url)
