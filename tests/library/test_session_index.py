"""The session index (`durableagent/_session_index.py`) on the session's Azurite, driven through the
real registered entity and the session list route: order, paging, delete, TTL, a lost index write,
and sessions from before the index. The listing tests of `test_session_routes.py` run here again
with the index on, so both ways of listing answer alike."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from durableagent import AgentFunctionApp
from durableagent import _sessions as sessions_module
from durableagent._session_index import TableSessionIndex, iso, row_key
from durableagent._sessions import CONTINUATION_HEADER
from durableagent.loop import run_coroutine

from .conftest import DurableClientDouble
from .test_session_routes import _age, _echo_agent
from .test_session_routes import test_an_agent_without_sessions_lists_none as _no_sessions
from .test_session_routes import (
    test_sessions_are_listed_newest_first_with_counts_and_last_activity as _newest,
)
from .test_session_routes import test_sessions_are_paged_with_a_continuation_token as _paged

ENTITY = "dafx-WeatherAgent"


@pytest.fixture
async def index(azurite: Any, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[TableSessionIndex]:
    """The app's storage is the session's Azurite, with a session index table of the test's own."""
    table = "s" + uuid.uuid4().hex[:16]
    monkeypatch.setenv("AzureWebJobsStorage", azurite.connection_string)
    monkeypatch.setenv("DURABLEAGENT_SESSION_INDEX", table)
    monkeypatch.setenv("DURABLEAGENT_STREAM_STORAGE", "off")
    index = TableSessionIndex(azurite.connection_string, table)
    yield index
    await index.close()


@pytest.fixture
async def indexed(index: TableSessionIndex) -> AsyncIterator[Any]:
    apps: list[AgentFunctionApp] = []

    def _build(*agents: Any, **kwargs: Any) -> tuple[AgentFunctionApp, DurableClientDouble]:
        app = AgentFunctionApp(agents=list(agents), **kwargs)
        apps.append(app)
        return app, DurableClientDouble(app)

    yield _build
    for app in apps:
        await _close(app)


async def _close(app: AgentFunctionApp) -> None:
    """Close the app's index clients: the routes' (this loop) and the entities' (the agent loop)."""
    table = app._index.get()
    if table is not None:
        await table.close()
        await asyncio.to_thread(run_coroutine, table.close())


async def _written(app: AgentFunctionApp) -> None:
    """The index writes the app's entities queued (they are made off the turn's path) are made."""
    table = app._index.get()
    assert table is not None
    await table.flushed()


async def test_newest_first_with_counts_and_last_activity(indexed):
    await _newest(indexed)


async def test_paged_with_a_continuation_token(indexed):
    await _paged(indexed)


async def test_no_sessions(indexed):
    await _no_sessions(indexed)


async def _newest_time(host: DurableClientDouble, key: str) -> datetime:
    _, state = await host.state("WeatherAgent", key)
    return datetime.fromisoformat(state["conversation_history"][-1]["timestamp"])


async def _listing(host: DurableClientDouble, top: int = 100) -> list[dict[str, Any]]:
    """Every listed session, following the continuation tokens."""
    listed: list[dict[str, Any]] = []
    token = None
    while True:
        status, body = await host.sessions(
            "WeatherAgent",
            params={"top": str(top)},
            headers=({CONTINUATION_HEADER: token} if token else None),
        )
        assert status == 200, body
        listed += body["sessions"]
        token = body["continuationToken"]
        if token is None:
            return listed


async def test_each_turn_moves_its_session_to_the_front_with_one_row(indexed, index):
    _, host = indexed(_echo_agent())
    for key in ["a", "b", "c"]:
        await host.run("WeatherAgent", {"message": "hi", "sessionId": key})
    await host.run("WeatherAgent", {"message": "again", "sessionId": "a"})
    assert [s["sessionId"] for s in await _listing(host, top=1)] == ["a", "c", "b"]
    rows = await index.page(ENTITY, None, 10)
    assert [row.key for row in rows] == ["a", "c", "b"]  # the old row of "a" is gone
    _, state = await host.state("WeatherAgent", "a")
    assert rows[0].last_activity == iso(
        datetime.fromisoformat(state["conversation_history"][-1]["timestamp"])
    )


async def test_a_page_reads_the_index_not_every_session(indexed, index):
    _, host = indexed(_echo_agent())
    for key in ["a", "b", "c", "d"]:
        await host.run("WeatherAgent", {"message": "hi", "sessionId": key})
    await _listing(host)  # the first listing reconciles once
    host.reads = 0

    async def no_listing(*args: Any) -> Any:
        raise AssertionError("the Durable HTTP API listing was read")

    host.list_entities = no_listing  # type: ignore[method-assign]
    status, body = await host.sessions("WeatherAgent", params={"top": "2"})
    assert status == 200 and [s["sessionId"] for s in body["sessions"]] == ["d", "c"]
    assert host.reads == 2  # the page's states only


async def test_an_invalid_token_or_top_is_a_400(indexed):
    _, host = indexed(_echo_agent())
    status, body = await host.sessions("WeatherAgent", params={"continuationToken": "not-a-row"})
    assert status == 400 and "continuation token" in body["error"]
    for top in ["0", "101", "x"]:
        assert (await host.sessions("WeatherAgent", params={"top": top}))[0] == 400


async def test_delete_removes_the_row(indexed, index):
    app, host = indexed(_echo_agent())
    for key in ["keep", "gone"]:
        await host.run("WeatherAgent", {"message": "hi", "sessionId": key})
    assert (await host.delete("WeatherAgent", "gone"))[0] == 204
    await _written(app)
    assert await index.keys(ENTITY) == {"keep"}
    assert [s["sessionId"] for s in await _listing(host)] == ["keep"]


async def test_sessions_idle_past_the_ttl_are_expired_and_end_the_listing(indexed, index):
    app, host = indexed(_echo_agent(), session_ttl=timedelta(hours=1))
    for key in ["old", "fresh"]:
        await host.run("WeatherAgent", {"message": "hi", "sessionId": key})
    await _listing(host)
    before = await _newest_time(host, "old")
    _age(host, "old", hours=2)
    await index.put(ENTITY, "old", await _newest_time(host, "old"), before)  # as the entity would
    assert [s["sessionId"] for s in await _listing(host)] == ["fresh"]
    await host.drain()
    assert (await host.state("WeatherAgent", "old"))[0] == 404
    await _written(app)
    assert await index.keys(ENTITY) == {"fresh"}  # the entity removed its row as it expired


async def test_a_lost_index_write_loses_no_session(indexed, index, monkeypatch):
    app, host = indexed(_echo_agent())
    for key in ["a", "b"]:
        await host.run("WeatherAgent", {"message": "hi", "sessionId": key})
    await _listing(host)
    real_write = TableSessionIndex._write

    async def lost(*args: Any) -> None:
        raise ConnectionResetError("the index write was lost")

    monkeypatch.setattr(TableSessionIndex, "_write", lost)
    await host.run("WeatherAgent", {"message": "again", "sessionId": "a"})  # its row stays the old one
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "new"})  # no row at all
    await _written(app)  # (made, and lost)
    monkeypatch.setattr(TableSessionIndex, "_write", real_write)
    monkeypatch.setattr(sessions_module, "REPAIR_AFTER", timedelta(0))
    # "a" is still listed (at its older row), with its state's count and newest time, and repaired.
    listed = await _listing(host)
    assert [s["sessionId"] for s in listed][:2] == ["b", "a"] and listed[1]["message_count"] == 4
    assert [row.key for row in await index.page(ENTITY, None, 10)][:2] == ["a", "b"]
    # "new" comes with the next reconciliation (in the background once the last is old enough).
    monkeypatch.setattr(sessions_module, "RECONCILE_SECONDS", 0.0)
    deadline = time.monotonic() + 10
    while "new" not in [s["sessionId"] for s in await _listing(host)]:
        assert time.monotonic() < deadline, "the session whose index write was lost never came back"
        await asyncio.sleep(0.05)
    assert await index.keys(ENTITY) == {"a", "b", "new"}


async def test_a_stale_row_beside_the_sessions_own_is_dropped(indexed, index, monkeypatch):
    _, host = indexed(_echo_agent())
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "a"})
    own = await _newest_time(host, "a")
    await index.put_many(ENTITY, [("a", own - timedelta(seconds=1))])  # a crashed attempt's row
    monkeypatch.setattr(sessions_module, "REPAIR_AFTER", timedelta(0))
    assert [s["sessionId"] for s in await _listing(host)] == ["a"]
    assert [row.row_key for row in await index.page(ENTITY, None, 10)] == [row_key("a", own)]


async def test_sessions_from_before_the_index_are_listed_by_the_first_listing(index, monkeypatch):
    monkeypatch.setenv("DURABLEAGENT_SESSION_INDEX", "off")
    before = AgentFunctionApp(agents=[_echo_agent()])
    old = DurableClientDouble(before)
    for key in ["x", "y", "z"]:
        await old.run("WeatherAgent", {"message": "hi", "sessionId": key})
    monkeypatch.setenv("DURABLEAGENT_SESSION_INDEX", index.table)
    upgraded = AgentFunctionApp(agents=[_echo_agent()])
    host = DurableClientDouble(upgraded)
    host.states, host.last_operation = old.states, old.last_operation  # the same back end, upgraded
    assert await index.keys(ENTITY) == set()
    assert [s["sessionId"] for s in await _listing(host)] == ["z", "y", "x"]
    assert await index.keys(ENTITY) == {"x", "y", "z"}
    # Their next turn moves them to their own rows (the backfill's is dropped when listed).
    await host.run("WeatherAgent", {"message": "again", "sessionId": "x"})
    monkeypatch.setattr(sessions_module, "REPAIR_AFTER", timedelta(0))
    assert [s["sessionId"] for s in await _listing(host)] == ["x", "z", "y"]
    assert len(await index.page(ENTITY, None, 10)) == 3
    await _close(upgraded)


async def test_row_keys_take_any_session_key():
    when = datetime(2026, 1, 1, tzinfo=UTC)
    keys = ["plain", "ünïcode-ключ", "a" * 400, "x\x01y", "😀"]
    rows = {row_key(key, when) for key in keys}
    assert len(rows) == len(keys) and all(len(row) == 50 for row in rows)
    assert row_key("k", when + timedelta(microseconds=1)) < row_key("k", when)  # newer sorts first
    assert json.dumps(sorted(rows))  # plain ASCII
