"""Agents as MCP tools (`AgentFunctionApp(enable_mcp_tool_trigger=True)`) on the local host, called
through the official `mcp` client: Microsoft's tool shape, one turn per call on the session the
call names, failures and timeouts as error results, and the health route's `mcp_tool_enabled`."""

from __future__ import annotations

import asyncio
import re
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError

from harness.host import LocalHost
from harness.host.entities.store import EntityStore, instance_id

AGENT_APP = Path(__file__).resolve().parent / "mcp_agent_app"


@pytest.fixture
async def agent_host(azurite_connstr: str, hub: str) -> AsyncIterator[LocalHost]:
    async with LocalHost(AGENT_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


def client(host: LocalHost) -> Client:
    return Client(f"{host.url}/runtime/webhooks/mcp", mode="legacy")


async def session_state(http, host: LocalHost, key: str) -> dict:
    async with http.get(f"{host.url}/api/agents/Helper/{key}") as resp:
        assert resp.status == 200, await resp.text()
        return await resp.json()


async def test_an_agent_is_a_tool_as_microsoft_registers_it(agent_host: LocalHost, http):
    async with client(agent_host) as mcp:
        tools = {tool.name: tool for tool in (await mcp.list_tools()).tools}
    assert set(tools) == {"Helper"}  # Quiet opted out
    helper = tools["Helper"]
    assert helper.description == "Answers anything."
    assert helper.input_schema["required"] == ["query"]
    assert set(helper.input_schema["properties"]) == {"query", "sessionId"}
    async with http.get(f"{agent_host.url}/api/health") as resp:
        agents = {a["name"]: a for a in (await resp.json())["agents"]}
    assert agents["Helper"]["mcp_tool_enabled"] is True
    assert agents["Quiet"]["mcp_tool_enabled"] is False


async def test_calls_naming_a_session_continue_it_one_turn_each(agent_host: LocalHost, http):
    key = uuid.uuid4().hex
    async with client(agent_host) as mcp:
        first = await mcp.call_tool("Helper", {"query": "hello", "sessionId": key})
        second = await mcp.call_tool("helper", {"query": "again", "threadId": key})
    assert not first.is_error and first.content[0].text == "You said: hello"
    assert second.content[0].text == "You said: again"
    state = await session_state(http, agent_host, key)
    assert state["message_count"] == 4


async def test_a_failing_turn_is_an_error_result(agent_host: LocalHost):
    async with client(agent_host) as mcp:
        result = await mcp.call_tool("Helper", {"query": "fail now"})
    assert result.is_error
    assert "Agent execution failed" in result.content[0].text
    assert "the model is down" in result.content[0].text


async def test_a_turn_past_the_timeout_says_how_to_get_its_reply_and_runs_once(agent_host: LocalHost, http):
    key = uuid.uuid4().hex
    async with client(agent_host) as mcp:
        late = await mcp.call_tool("Helper", {"query": "slow one", "sessionId": key})
        assert late.is_error
        text = late.content[0].text
        assert f"session {key}" in text
        correlation = re.search(r"correlation id (\w+)", text).group(1)
        again = await mcp.call_tool(
            "Helper", {"query": "slow one", "sessionId": key, "correlationId": correlation}
        )
    assert not again.is_error, again.content[0].text
    assert again.content[0].text == "finally: slow one"
    assert (await session_state(http, agent_host, key))["message_count"] == 2  # one turn, not two


async def test_bad_arguments_are_named(agent_host: LocalHost):
    async with client(agent_host) as mcp:
        with pytest.raises(MCPError) as missing:
            await mcp.call_tool("Helper", {"sessionId": "k"})
        not_text = await mcp.call_tool("Helper", {"query": "hi", "sessionId": 5})
        bad_key = await mcp.call_tool("Helper", {"query": "hi", "sessionId": "a/b"})
        other_agent = await mcp.call_tool("Helper", {"query": "hi", "sessionId": "@Quiet@k"})
        blank = await mcp.call_tool("Helper", {"query": "  "})
    assert missing.value.code == -32602 and "query" in missing.value.message
    assert not_text.is_error and "'sessionId' must be a string" in not_text.content[0].text
    assert bad_key.is_error and "'/'" in bad_key.content[0].text
    assert other_agent.is_error and "'Quiet'" in other_agent.content[0].text
    assert blank.is_error and "query" in blank.content[0].text


async def test_a_client_asking_for_progress_gets_the_reply_as_it_is_written(agent_host: LocalHost, http):
    chunks: list[tuple[float, str | None]] = []

    async def progress(done: float, total: float | None, message: str | None) -> None:
        chunks.append((done, message))

    key = uuid.uuid4().hex
    async with client(agent_host) as mcp:
        result = await mcp.call_tool(
            "Helper", {"query": "stream it", "sessionId": key}, progress_callback=progress
        )
        plain = await mcp.call_tool("Helper", {"query": "stream again", "sessionId": key})
    assert result.content[0].text == "one two three"
    assert chunks == [(1, "one "), (2, "two "), (3, "three")]
    assert plain.content[0].text == "one two three" and len(chunks) == 3  # no token, no progress
    assert (await session_state(http, agent_host, key))["message_count"] == 4


async def test_a_host_killed_during_a_turn_applies_it_once_and_the_call_can_be_retried(
    host_process, azurite_connstr: str, hub: str, http
):
    start, procs = host_process
    url = start(AGENT_APP)
    key, correlation = uuid.uuid4().hex, uuid.uuid4().hex
    arguments = {"query": "slow but sure", "sessionId": key, "correlationId": correlation}
    entity = instance_id("dafx-helper", key)

    async def first_call() -> str:
        try:
            async with Client(f"{url}/runtime/webhooks/mcp", mode="legacy") as mcp:
                result = await mcp.call_tool("Helper", arguments)
        except Exception as exc:  # the transport's error when the host dies, whatever its type
            return f"failed: {type(exc).__name__}"
        return "error result" if result.is_error else f"reply: {result.content[0].text}"

    call = asyncio.ensure_future(first_call())
    store = EntityStore(azurite_connstr, hub)
    try:
        deadline = time.monotonic() + 10
        while not await store.pending(entity) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert await store.pending(entity), "the turn's signal was never stored"
    finally:
        await store.close()
    procs[-1].send_signal(signal.SIGKILL)  # the model takes 2.5 s: the turn is under way
    procs[-1].wait()
    outcome = await asyncio.wait_for(call, 30)
    assert not outcome.startswith("reply"), outcome  # never a reply from a host that died first
    url = start(AGENT_APP)
    deadline = time.monotonic() + 30
    async with Client(f"{url}/runtime/webhooks/mcp", mode="legacy") as mcp:
        while True:  # the same ids: the stored reply, once the turn has run (again) to its end
            result = await mcp.call_tool("Helper", arguments)
            if not result.is_error or time.monotonic() > deadline:
                break
            assert "did not finish" in result.content[0].text, result.content[0].text
    assert not result.is_error and result.content[0].text == "finally: slow but sure"
    async with http.get(f"{url}/api/agents/Helper/{key}") as resp:
        state = await resp.json()
    assert state["message_count"] == 2  # applied once
