"""Small async helpers shared by the host tests."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp

ENTITY_API = "/runtime/webhooks/durabletask/entities"


def sdk_body(value: Any) -> str:
    """What DurableOrchestrationClient.signal_entity posts: the JSON text of the value, JSON-encoded again."""
    return json.dumps(json.dumps(value))


async def signal(
    http: aiohttp.ClientSession, base: str, name: str, key: str, op: str, value: Any = None, **kw: Any
) -> int:
    body = sdk_body(value) if value is not None else None
    async with http.post(f"{base}{ENTITY_API}/{name}/{key}", params={"op": op}, data=body, **kw) as resp:
        return resp.status


async def read_state(http: aiohttp.ClientSession, base: str, name: str, key: str) -> tuple[int, Any]:
    async with http.get(f"{base}{ENTITY_API}/{name}/{key}") as resp:
        return resp.status, await resp.json(content_type=None)


async def wait_state(
    http: aiohttp.ClientSession, base: str, name: str, key: str, expected: Any, timeout: float = 15.0
) -> Any:
    """Poll until the entity's state equals `expected` (signals are applied asynchronously)."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        status, last = await read_state(http, base, name, key)
        if status == 200 and last == expected:
            return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"state of {name}/{key} is {last!r}, expected {expected!r}")
