"""Durability: restart keeps state, persisted signals survive SIGKILL, storage outages give 503."""

import asyncio
import json
import shutil
import signal as signals
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from azure.core.exceptions import ServiceResponseError

from harness.azurite import Azurite
from harness.host import LocalHost
from harness.host.entities.store import EntityStore, PendingSignal, instance_id, new_signal_key
from harness.host.storage.lease import HubInUse
from harness.processes import free_port

from .conftest import COUNTER_APP
from .helpers import read_state, sdk_body, signal, wait_state


async def test_restart_keeps_state(azurite_connstr: str, hub: str, http: aiohttp.ClientSession):
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        assert await signal(http, host.url, "counter", "r", "add", 41) == 202
        await wait_state(http, host.url, "counter", "r", 41)
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        assert await read_state(http, host.url, "counter", "r") == (200, 41)
        assert await signal(http, host.url, "counter", "r", "add", 1) == 202
        await wait_state(http, host.url, "counter", "r", 42)


async def test_persisted_unapplied_signal_is_applied_once_after_start(
    azurite_connstr: str, hub: str, http: aiohttp.ClientSession
):
    store = EntityStore(azurite_connstr, hub)
    try:
        await store.open()
        for _ in range(3):
            await store.add_signal("counter", "left", "add", json.dumps(json.dumps(5)))
    finally:
        await store.close()
    for _ in range(2):  # the second start must not re-apply anything
        async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
            await host.wait_idle()
            assert await read_state(http, host.url, "counter", "left") == (200, 15)
            assert host.store is not None
            assert await host.store.pending(instance_id("counter", "left")) == []


def lose_first_commit_answer(store: Any) -> list[bool]:
    """Fault injection at the storage client: the store's next commit lands and its answer does
    not (a connection reset); the list gets True once that happened."""
    real_commit = store.commit
    lost: list[bool] = []

    async def commit_then_lose_the_answer(*args: Any, **kwargs: Any) -> None:
        await real_commit(*args, **kwargs)
        if not lost:
            lost.append(True)
            raise store.fail(ServiceResponseError("connection reset before the answer"))

    store.commit = commit_then_lose_the_answer
    return lost


async def test_a_commit_whose_answer_was_lost_is_not_applied_again(
    azurite_connstr: str, hub: str, http: aiohttp.ClientSession
):
    """Fault injection at the storage client: the write lands, the answer does not (a timeout)."""
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        store = host.store
        assert store is not None
        lost = lose_first_commit_answer(store)
        assert await signal(http, host.url, "counter", "lost", "add", 5) == 202
        await host.wait_idle()
        assert lost == [True]
        assert await read_state(http, host.url, "counter", "lost") == (200, 5)
        assert await signal(http, host.url, "counter", "lost", "add", 1) == 202
        await wait_state(http, host.url, "counter", "lost", 6)


async def test_signals_dropped_with_a_lost_answer_do_not_keep_the_worker_busy(
    azurite_connstr: str, hub: str, http: aiohttp.ClientSession
):
    """A batch that leaves no entity deletes its signals; if that answer is lost, the retry finds
    them gone and the worker still finishes (fault injection at the storage client)."""
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        assert host.store is not None
        table = host.store._table
        real_submit = table.submit_transaction
        lost: list[bool] = []

        async def submit_then_lose_the_answer(*args, **kwargs):
            result = await real_submit(*args, **kwargs)
            if not lost:
                lost.append(True)
                raise ServiceResponseError("connection reset before the answer")
            return result

        table.submit_transaction = submit_then_lose_the_answer  # type: ignore[method-assign]
        assert await signal(http, host.url, "counter", "never", "delete") == 202
        await asyncio.wait_for(host.wait_idle(), 15)
        assert lost == [True]
        assert await host.store.pending(instance_id("counter", "never")) == []
        assert await signal(http, host.url, "counter", "never", "add", 2) == 202
        await wait_state(http, host.url, "counter", "never", 2)


async def test_sigkill_loses_no_accepted_signal_and_applies_none_twice(
    host_process, azurite_connstr: str, hub: str, http: aiohttp.ClientSession
):
    start, procs = host_process
    accepted = 0
    left: list = []
    for _ in range(5):  # until a kill lands while signals are still pending
        url = start()
        statuses = await asyncio.gather(*(signal(http, url, "counter", "kill", "add", 1) for _ in range(100)))
        assert statuses.count(202) == 100
        accepted += 100
        procs[-1].send_signal(signals.SIGKILL)
        procs[-1].wait()
        store = EntityStore(azurite_connstr, hub)
        try:
            left = await store.pending(instance_id("counter", "kill"), limit=100)
        finally:
            await store.close()
        if left:
            break
    assert left, "no kill landed while signals were pending"
    url = start()
    await wait_state(http, url, "counter", "kill", accepted)
    store = EntityStore(azurite_connstr, hub)
    try:
        assert await store.pending(instance_id("counter", "kill")) == []
    finally:
        await store.close()
    assert await read_state(http, url, "counter", "kill") == (200, accepted)
    # SIGTERM is a clean shutdown
    procs[-1].terminate()
    assert procs[-1].wait(10) == 0


async def test_storage_outage_is_503_and_recovers(tmp_path: Path, hub: str, http: aiohttp.ClientSession):
    # A private Azurite on fixed ports: this test stops it and starts it again.
    azurite = Azurite.on_fixed_ports(tmp_path / "data", log_path=tmp_path / "azurite.log").start()
    try:
        async with LocalHost(COUNTER_APP, port=0, storage=azurite.connection_string, hub_name=hub) as host:
            assert await signal(http, host.url, "counter", "o", "add", 1) == 202
            await wait_state(http, host.url, "counter", "o", 1)
            azurite.stop()
            url = f"{host.url}/runtime/webhooks/durabletask/entities/counter/o"
            async with http.post(url, params={"op": "add"}, data=sdk_body(1)) as resp:
                assert resp.status == 503
                assert "error" in await resp.json()
            status, body = await read_state(http, host.url, "counter", "o")
            assert status == 503 and "error" in body
            async with http.get(f"{host.url}/api/counters/o") as resp:
                assert resp.status == 500  # the app's own read fails: its client raises on 503
            azurite.start()
            assert await signal(http, host.url, "counter", "o", "add", 1) == 202
            await wait_state(http, host.url, "counter", "o", 2)
    finally:
        azurite.stop()


async def test_storage_that_comes_back_empty_is_recreated(
    tmp_path: Path, hub: str, http: aiohttp.ClientSession
):
    """Azurite restarted with an empty data folder: the host recreates its tables and container
    instead of answering 503 until it is restarted."""
    data = tmp_path / "data"
    azurite = Azurite.on_fixed_ports(data, log_path=tmp_path / "azurite.log").start()
    try:
        async with LocalHost(COUNTER_APP, port=0, storage=azurite.connection_string, hub_name=hub) as host:
            assert await signal(http, host.url, "counter", "gone", "add", 1) == 202
            await wait_state(http, host.url, "counter", "gone", 1)
            azurite.stop()
            shutil.rmtree(data)
            azurite.start()
            codes = []
            for _ in range(20):
                codes.append(await signal(http, host.url, "counter", "fresh", "add", 2))
                if codes[-1] == 202:
                    break
                await asyncio.sleep(0.1)
            assert codes[-1] == 202, codes
            assert codes.count(503) <= 1  # at most the request that found the table gone
            await wait_state(http, host.url, "counter", "fresh", 2)
            status, _ = await read_state(http, host.url, "counter", "gone")
            assert status == 404  # the old entity went with the old data
    finally:
        azurite.stop()


async def test_deep_json_long_headers_and_long_urls_get_json_errors(host: LocalHost, http):
    url = f"{host.url}/runtime/webhooks/durabletask/entities/counter/deep"
    async with http.post(url, params={"op": "add"}, data=b"[" * 100_000 + b"]" * 100_000) as resp:
        assert resp.status == 400 and "nested" in (await resp.json())["error"]
    async with http.get(f"{host.url}/api/counters/x", headers={"X-Big": "a" * 9000}) as resp:
        assert resp.status == 431 and "X-Big" in (await resp.json())["error"]
    async with http.get(f"{host.url}/api/counters/{'y' * 9000}") as resp:
        assert resp.status == 414 and "error" in await resp.json()
    status, _ = await read_state(http, host.url, "counter", "deep")
    assert status == 404  # nothing was applied


async def test_a_second_host_on_the_same_hub_refuses_to_start(azurite_connstr: str, hub: str):
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as first:
        second = LocalHost(COUNTER_APP, port=free_port(), storage=azurite_connstr, hub_name=hub)
        with pytest.raises(
            HubInUse, match=rf"task hub '{hub}' is in use by another host \(pid \d+ .* at {first.url}"
        ):
            await second.start()
    # A clean stop frees the hub at once.
    async with LocalHost(COUNTER_APP, port=free_port(), storage=azurite_connstr, hub_name=hub) as third:
        assert third.lease is not None and third.lease.held


async def test_requests_the_http_parser_refuses_get_json_errors(host: LocalHost):
    """Bytes the HTTP parser rejects never reach a handler; the answer is still JSON."""
    reader, writer = await asyncio.open_connection("127.0.0.1", host.port)
    writer.write(
        b"POST /api/counters/x HTTP/1.1\r\nHost: x\r\nIdempotency-Key: \xe4\x01x\r\nContent-Length: 0\r\n\r\n"
    )
    await writer.drain()
    raw = await asyncio.wait_for(reader.read(), 10)
    writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.split(b"\r\n")[0].endswith(b"400 Bad Request")
    assert b"application/json" in head
    assert "error" in json.loads(body)


# -- operations held in the state row (`EntityDispatcher.accept_inline`, the run route's turns) ------


async def test_an_operation_held_in_the_state_row_is_applied_once_after_start(
    azurite_connstr: str, hub: str, http: aiohttp.ClientSession
):
    """A SIGKILL between the write that accepts an inline operation and its commit: the row holds
    it, and the next start applies it once, after nothing else and before any later signal."""
    store = EntityStore(azurite_connstr, hub)
    try:
        await store.open()
        await store.hold(None, "counter", "new", PendingSignal(new_signal_key(), "add", sdk_body(5)))
        await store.commit(None, "counter", "old", True, "10", [])
        old = await store.read(instance_id("counter", "old"))
        await store.hold(old, "counter", "old", PendingSignal(new_signal_key(), "add", sdk_body(5)))
        await store.add_signal("counter", "old", "add", sdk_body(100))  # came after the held one
    finally:
        await store.close()
    for _ in range(2):  # the second start must not re-apply anything
        async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
            await host.wait_idle()
            assert await read_state(http, host.url, "counter", "new") == (200, 5)
            assert await read_state(http, host.url, "counter", "old") == (200, 115)
            assert host.store is not None
            for key in ("new", "old"):
                assert await host.store.pending(instance_id("counter", key)) == []


async def test_an_inline_operation_is_accepted_once_and_its_state_committed(
    azurite_connstr: str, hub: str, http: aiohttp.ClientSession
):
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        assert host.dispatcher is not None and host.store is not None
        added: list[str] = []
        real_add = host.store.add_signal

        async def add_signal(*args, **kwargs):
            added.append(args[2])
            return await real_add(*args, **kwargs)

        host.store.add_signal = add_signal  # type: ignore[method-assign]
        for expected in (5, 10):  # a new entity (no read: its row is created), then a cached one
            assert await host.dispatcher.accept_inline("Counter", "inline", "add", sdk_body(5)) is True
            await host.wait_idle()
            assert await read_state(http, host.url, "counter", "inline") == (200, expected)
        assert added == []  # accepted in the state row: no signal row
        record = await host.store.read(instance_id("counter", "inline"))
        assert record is not None and record.held is None  # the commit cleared it


async def test_inline_operations_wait_their_turn_behind_queued_signals(
    azurite_connstr: str, hub: str, http: aiohttp.ClientSession
):
    """An entity with signals queued or applying declines (the caller signals, behind them)."""
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        assert host.dispatcher is not None
        assert await signal(http, host.url, "counter", "busy", "set", 1) == 202
        # The signal's worker runs or its signal is queued: not idle.
        assert await host.dispatcher.accept_inline("Counter", "busy", "add", sdk_body(5)) is False
        await host.wait_idle()
        assert await host.dispatcher.accept_inline("Counter", "busy", "add", sdk_body(5)) is True
        await host.wait_idle()
        assert await read_state(http, host.url, "counter", "busy") == (200, 6)


async def test_an_inline_commit_whose_answer_was_lost_is_not_applied_again(
    azurite_connstr: str, hub: str, http: aiohttp.ClientSession
):
    """The commit of an inline operation lands and its answer is lost: the operation goes to the
    ordinary path, which sees the row no longer holds it and does not apply it again."""
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        store, dispatcher = host.store, host.dispatcher
        assert store is not None and dispatcher is not None
        lost = lose_first_commit_answer(store)
        assert await dispatcher.accept_inline("Counter", "lost", "add", sdk_body(5)) is True
        await host.wait_idle()
        assert lost == [True]
        assert await read_state(http, host.url, "counter", "lost") == (200, 5)
        assert await dispatcher.accept_inline("Counter", "lost", "add", sdk_body(1)) is True
        await host.wait_idle()
        assert await read_state(http, host.url, "counter", "lost") == (200, 6)


async def test_an_inline_operation_that_fails_keeps_the_state(
    azurite_connstr: str, hub: str, http: aiohttp.ClientSession
):
    async with LocalHost(COUNTER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        assert host.dispatcher is not None and host.store is not None
        assert await host.dispatcher.accept_inline("Counter", "bad", "set", sdk_body(3)) is True
        await host.wait_idle()
        # An unknown operation raises in the entity function: an operation error, state kept.
        assert await host.dispatcher.accept_inline("Counter", "bad", "nope", sdk_body(1)) is True
        await host.wait_idle()
        assert await read_state(http, host.url, "counter", "bad") == (200, 3)
        assert await host.store.pending(instance_id("counter", "bad")) == []
