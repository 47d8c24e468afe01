"""Queue triggers on the local host, fed through the real queue SDK against Azurite."""

from __future__ import annotations

import asyncio
import base64
import json
import time
import uuid
from pathlib import Path

import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import BinaryBase64EncodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from harness.host import LocalHost
from harness.host.loader import AppLoadError
from harness.host.queues import message_text, queue_name

QUEUE_APP = Path(__file__).resolve().parent / "queue_app"


def test_queue_names_and_message_text(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("Q", "orders")
    assert queue_name("%Q%") == "orders"
    for bad in ("Orders", "a", "has--two", "%NOT_SET_X%"):
        with pytest.raises(ValueError):
            queue_name(bad)
    assert message_text(base64.b64encode("héllo".encode()).decode()) == "héllo"
    assert message_text('{"plain": true}') == '{"plain": true}'


async def test_messages_reach_the_function_with_a_durable_client(azurite_connstr, hub, http):
    key = uuid.uuid4().hex
    async with LocalHost(QUEUE_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        encoded = QueueClient.from_connection_string(
            azurite_connstr, "work-items", message_encode_policy=TextBase64EncodePolicy()
        )
        plain = QueueClient.from_connection_string(azurite_connstr, "work-items")
        async with encoded, plain:
            await encoded.send_message(
                json.dumps({"key": key, "value": 1})
            )  # base64, as Azure's clients send
            await plain.send_message(json.dumps({"key": key, "value": 2}))  # as written
        state = await wait_state_sorted(http, host.url, key, [1, 2])
        assert state == [1, 2]


async def wait_state_sorted(http, url: str, key: str, expected: list[int]) -> list[int]:
    deadline = time.monotonic() + 15
    last: list[int] = []
    while time.monotonic() < deadline:
        async with http.get(f"{url}/runtime/webhooks/durabletask/entities/seen/{key}") as resp:
            if resp.status == 200:
                last = sorted(await resp.json())
                if last == expected:
                    return last
        await asyncio.sleep(0.05)
    raise AssertionError(f"entity seen/{key} holds {last}")


async def test_a_failing_message_is_retried_then_moved_to_the_poison_queue(azurite_connstr, hub):
    marker = uuid.uuid4().hex
    async with LocalHost(QUEUE_APP, port=0, storage=azurite_connstr, hub_name=hub):
        queue = QueueClient.from_connection_string(
            azurite_connstr, "always-fails", message_encode_policy=BinaryBase64EncodePolicy()
        )
        poison = QueueClient.from_connection_string(azurite_connstr, "always-fails-poison")
        async with queue, poison:
            await queue.send_message(marker.encode())
            deadline = time.monotonic() + 20
            found = False
            while time.monotonic() < deadline and not found:
                try:
                    for message in await poison.peek_messages(max_messages=32):
                        found = found or message_text(message.content) == marker
                except ResourceNotFoundError:  # the poison queue does not exist yet
                    pass
                await asyncio.sleep(0.1)
            assert found, "the message never reached always-fails-poison"
            remaining = await queue.peek_messages(max_messages=32)
            assert all(message_text(m.content) != marker for m in remaining)


async def test_a_bad_queue_name_stops_the_host_at_start(azurite_connstr, hub, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WORK_QUEUE", "Not_Valid")
    with pytest.raises(AppLoadError, match="function on_work: queue name 'Not_Valid' is not valid"):
        await LocalHost(QUEUE_APP, port=0, storage=azurite_connstr, hub_name=hub).start()
