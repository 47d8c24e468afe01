"""Workflows as MCP tools (ours: Microsoft's Python package has none), called through the official
`mcp` client: the input schema from the start executor's type, the output as the result, a wait
for a person as a result that says where to answer, and bad arguments as errors."""

from __future__ import annotations

from pathlib import Path

import pytest
from mcp import Client

pytestmark = pytest.mark.integration
APP = Path(__file__).resolve().parent / "workflow_app"


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return APP


def client(function_host) -> Client:
    return Client(f"{function_host.url}/runtime/webhooks/mcp", mode="legacy")


async def test_a_workflow_is_a_tool_with_its_input_fields_as_properties(function_host):
    async with client(function_host) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
        assert {"greet", "approve"} <= set(tools) and "boom" not in tools
        greet = tools["greet"]
        assert greet.description == "Greets someone."
        assert set(greet.input_schema["properties"]) == {"name", "times"}
        assert greet.input_schema["required"] == ["name"]
        assert greet.input_schema["properties"]["times"]["type"] == "integer"
        assert tools["approve"].input_schema["properties"]["input"]["type"] == "string"
        result = await mcp.call_tool("greet", {"name": "Ada", "times": 2})
        assert not result.is_error, result
        assert result.content[0].text == "hello Ada hello Ada"
        bad = await mcp.call_tool("greet", {"name": "Ada", "times": "often"})
        assert bad.is_error and "times" in bad.content[0].text


async def test_a_workflow_waiting_for_a_person_says_where_to_answer(function_host, host_client):
    async with client(function_host) as mcp:
        result = await mcp.call_tool("approve", {"input": "ship it?"})
    assert not result.is_error, result
    text = result.content[0].text
    assert "waiting for a person" in text and '"ship it?"' in text
    path = text.split("POST ", 1)[1].split(" ", 1)[0]
    answered = host_client.post(path, json={"ok": True})
    assert answered.status_code == 200, answered.text


async def test_a_client_asking_for_progress_gets_the_workflows_events(function_host):
    lines: list[str] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        lines.append(message or "")

    async with client(function_host) as mcp:
        result = await mcp.call_tool("greet", {"name": "Bo"}, progress_callback=progress)
    assert not result.is_error and result.content[0].text == "hello Bo"
    assert lines[0] == "executor invoked: greet" and "executor completed: greet" in lines
    assert lines[-1] == "workflow completed"
