"""Queue triggers on the local host, fed through the real queue SDK against Azurite."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import time
import uuid
from pathlib import Path

import azure.functions as func
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.queue import BinaryBase64EncodePolicy, TextBase64EncodePolicy
from azure.storage.queue.aio import QueueClient

from harness.host import LocalHost
from harness.host.errors import AppLoadError
from harness.host.triggers import queues
from harness.host.triggers.queues import message_text, queue_name

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
    """Sent as soon as the host has started, to a queue that did not exist before it: the host
    creates its queues before it says it is ready (a send could be refused with QueueNotFound)."""
    key = uuid.uuid4().hex
    async with QueueClient.from_connection_string(azurite_connstr, "work-items") as gone:
        with contextlib.suppress(ResourceNotFoundError):
            await gone.delete_queue()
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


async def test_a_failing_message_is_retried_max_dequeue_count_times_then_poisoned(azurite_connstr, hub, http):
    marker = uuid.uuid4().hex
    async with LocalHost(QUEUE_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
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
        # host.json sets maxDequeueCount to 3: the function saw the message three times.
        assert await wait_state_sorted(http, host.url, marker, [1, 2, 3]) == [1, 2, 3]


async def test_queue_outputs_chain_functions_from_http_through_two_queues(azurite_connstr, hub, http, caplog):
    key = uuid.uuid4().hex
    async with LocalHost(QUEUE_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        body = json.dumps({"key": key, "values": [1, 2, 3]})
        async with http.post(f"{host.url}/api/enqueue", data=body) as resp:
            assert resp.status == 202
            assert await resp.text() == "queued"
        # enqueue's Out -> incoming; fan_out's Out list -> three messages on split; doubled's $return -> done
        assert await wait_state_sorted(http, host.url, key, [2, 4, 6]) == [2, 4, 6]
    assert "function fan_out: output binding copy (blob) is not supported" in caplog.text


async def test_output_messages_are_base64_as_the_functions_host_writes_them(azurite_connstr, hub, http):
    from harness.host.triggers.outputs import OutputWriter

    queue_name = f"out-{uuid.uuid4().hex[:12]}"
    writer = OutputWriter(azurite_connstr)
    try:
        await writer._send(queue_name, "AzureWebJobsStorage", [b"one", "t\u00e9".encode()])
    finally:
        await writer.close()
    async with QueueClient.from_connection_string(azurite_connstr, queue_name) as queue:
        stored = [m.content for m in await queue.peek_messages(max_messages=8)]
        await queue.delete_queue()
    assert stored == [base64.b64encode(b"one").decode(), base64.b64encode("t\u00e9".encode()).decode()]


def test_output_values_become_messages():
    from harness.host.triggers.outputs import message_bodies

    assert message_bodies(None, "out") == []
    assert message_bodies("a", "out") == [b"a"]
    assert message_bodies(b"\x00b", "out") == [b"\x00b"]
    assert message_bodies(["a", "b\u00e9"], "out") == [b"a", "b\u00e9".encode()]
    message = func.QueueMessage(body=b"kept")
    assert message_bodies(message, "out") == message_bodies([message], "out") == [b"kept"]
    # What the Python worker's own converter refuses fails here too, rather than first on Azure.
    for refused in (object(), 3, [{"c": 1}], [b"bytes in a list"]):
        with pytest.raises(
            TypeError, match="queue output 'out' got .*, which the Functions worker cannot send"
        ):
            message_bodies(refused, "out")


@pytest.mark.parametrize("encode", [True, False])
async def test_an_output_that_cannot_be_written_sends_none_of_its_messages(azurite_connstr, encode):
    """Each message is checked before the first is sent: a failed output fails its invocation whole,
    so a retried trigger does not send the first messages twice."""
    from harness.host.triggers.outputs import MAX_MESSAGE, OutputWriter

    fits = 3 * MAX_MESSAGE // 4 if encode else MAX_MESSAGE  # base64 makes 3 bytes 4
    writer = OutputWriter(azurite_connstr, encode=encode)
    bad = [
        ([b"ok", b"x" * (fits + 1)], "message 2 of 2 .* at most 65536"),
        ([b"x" * fits, "t\u00e9".encode("utf-16")], "not UTF-8" if not encode else None),
    ]
    try:
        for bodies, error in bad:
            queue_name = f"out-{uuid.uuid4().hex[:12]}"
            if error is None:
                await writer._send(queue_name, "AzureWebJobsStorage", bodies)
                expected = len(bodies)
            else:
                with pytest.raises(ValueError, match=error):
                    await writer._send(queue_name, "AzureWebJobsStorage", bodies)
                expected = 0
            async with QueueClient.from_connection_string(azurite_connstr, queue_name) as queue:
                try:
                    stored = await queue.peek_messages(max_messages=8)
                    await queue.delete_queue()
                except ResourceNotFoundError:
                    stored = []
            assert len(stored) == expected
    finally:
        await writer.close()


async def test_a_bad_queue_name_stops_the_host_at_start(azurite_connstr, hub, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("WORK_QUEUE", "Not_Valid")
    with pytest.raises(AppLoadError, match="function on_work: queue name 'Not_Valid' is not valid"):
        await LocalHost(QUEUE_APP, port=0, storage=azurite_connstr, hub_name=hub).start()


async def test_a_bad_output_queue_stops_the_host_at_start(azurite_connstr, hub, tmp_path: Path):
    app = tmp_path / "bad_output"
    app.mkdir()
    (app / "host.json").write_text('{"version": "2.0"}')
    (app / "function_app.py").write_text(
        "import azure.functions as func\n"
        "app = func.FunctionApp(http_auth_level=func.AuthLevel.ANONYMOUS)\n"
        "@app.route(route='x')\n"
        "@app.queue_output(arg_name='out', queue_name='Bad_Name', connection='AzureWebJobsStorage')\n"
        "def x(req, out):\n"
        "    return func.HttpResponse('')\n"
    )
    with pytest.raises(AppLoadError, match="function x: output 'out': queue name 'Bad_Name' is not valid"):
        await LocalHost(app, port=0, storage=azurite_connstr, hub_name=hub).start()


async def test_a_message_this_host_sends_reaches_its_queue_trigger_without_waiting_for_the_next_poll(
    azurite_connstr, hub, http, monkeypatch: pytest.MonkeyPatch
):
    """The idle pollers wait 60 s here: only the host's own wake-up can deliver within seconds."""
    monkeypatch.setattr(queues, "POLL_MIN", 60.0)
    monkeypatch.setattr(queues, "POLL_MAX", 60.0)
    key = uuid.uuid4().hex
    async with LocalHost(QUEUE_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        body = json.dumps({"key": key, "values": [1, 2]})
        async with http.post(f"{host.url}/api/enqueue", data=body) as resp:
            assert resp.status == 202
        # enqueue -> incoming -> fan_out -> split -> doubled -> done -> record_done: the pollers of
        # split and done found their queues empty at start-up, long before these messages came
        assert await wait_state_sorted(http, host.url, key, [2, 4]) == [2, 4]
