"""Orchestrations on the local host, through the real DurableOrchestrationClient (the app's HTTP
triggers) and the instance API, with state in the session's Azurite."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.host import LocalHost

ORCH_APP = Path(__file__).resolve().parent / "orchestration_app"
API = "/runtime/webhooks/durabletask"


@pytest.fixture
async def host(azurite_connstr: str, hub: str) -> AsyncIterator[LocalHost]:
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as running:
        yield running


async def start(
    http: aiohttp.ClientSession, host: LocalHost, name: str, payload: Any = None, **params: str
) -> dict:
    """Start through the app's own trigger (client.start_new + create_check_status_response)."""
    data = json.dumps(payload) if payload is not None else None
    async with http.post(f"{host.url}/api/start/{name}", data=data, params=params) as resp:
        assert resp.status == 202, await resp.text()
        return await resp.json()


async def status(http: aiohttp.ClientSession, url: str, **params: str) -> tuple[int, dict]:
    async with http.get(url, params=params) as resp:
        return resp.status, await resp.json(content_type=None)


async def wait_done(http: aiohttp.ClientSession, links: dict, timeout: float = 15.0, **params: str) -> dict:
    """Poll the check-status URL until the instance has finished."""
    deadline = time.monotonic() + timeout
    body: dict = {}
    while time.monotonic() < deadline:
        _, body = await status(http, links["statusQueryGetUri"], **params)
        if body.get("runtimeStatus") in ("Completed", "Failed", "Terminated"):
            return body
        await asyncio.sleep(0.05)
    raise AssertionError(f"instance did not finish: {body}")


async def test_activity_chain_completes_with_output_custom_status_and_history(host, http):
    links = await start(http, host, "hello_sequence")
    assert links["id"] and links["statusQueryGetUri"].startswith(host.url)
    done = await wait_done(http, links, showHistory="true", showHistoryOutput="true")
    assert done["runtimeStatus"] == "Completed"
    assert done["output"] == ["Hello Tokyo", "Hello Seattle", "Hello London"]
    assert done["customStatus"] == {"done": 3}
    kinds = [e["EventType"] for e in done["historyEvents"]]
    assert kinds == [
        "ExecutionStarted",
        "TaskCompleted",
        "TaskCompleted",
        "TaskCompleted",
        "ExecutionCompleted",
    ]
    assert done["historyEvents"][1]["FunctionName"] == "say_hello"
    assert done["historyEvents"][1]["Result"] == "Hello Tokyo"
