"""The session index (`durableagent/_session_index.py`) on the session's Azurite, driven through the
real registered entity and the session list route: order, paging, delete, TTL, a lost index write,
sessions from before the index, and the index's head (pages across it, a head missing, unreadable
or behind, writers racing on it). The listing tests of `test_session_routes.py` run here again
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
from durableagent import _session_index as index_module
from durableagent import _sessions as sessions_module
from durableagent._session_index import HEAD_ROW, HEAD_SUFFIX, TableSessionIndex, iso, row_key
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


# -- the head ----------------------------------------------------------------------------------------
async def _turns(host: DurableClientDouble, keys: list[str]) -> None:
    for key in keys:
        await host.run("WeatherAgent", {"message": "hi", "sessionId": key})


def _range_queries(monkeypatch: pytest.MonkeyPatch) -> list[str | None]:
    """The `after` of each range query of the index made from now on."""
    made: list[str | None] = []
    real_page = TableSessionIndex.page

    async def page(self: TableSessionIndex, entity_name: str, after: str | None, count: int) -> Any:
        made.append(after)
        return await real_page(self, entity_name, after, count)

    monkeypatch.setattr(TableSessionIndex, "page", page)
    return made


async def test_pages_within_the_head_read_it_and_pages_past_it_query_the_index(indexed, index, monkeypatch):
    monkeypatch.setattr(index_module, "HEAD_SIZE", 3)
    _, host = indexed(_echo_agent())
    await _turns(host, ["a", "b", "c", "d", "e", "f", "g"])
    await _listing(host)  # the first listing reconciles, and makes the head
    head = await index.read_head(ENTITY)
    assert head.valid and not head.whole and [entry.key for entry in head.entries] == ["g", "f", "e"]
    queries = _range_queries(monkeypatch)
    status, body = await host.sessions("WeatherAgent", params={"top": "2"})
    assert status == 200 and [s["sessionId"] for s in body["sessions"]] == ["g", "f"]
    assert queries == []  # one point read of the head, no range query
    # Paged through, across the head's end: the same order as the index's.
    assert [s["sessionId"] for s in await _listing(host, top=2)] == list("gfedcba")
    assert queries and None not in queries  # the later pages, past the head, queried the index
    # A turn moves its session to the front of the head; the oldest entry falls out of it.
    await host.run("WeatherAgent", {"message": "again", "sessionId": "b"})
    assert [s["sessionId"] for s in await _listing(host, top=2)] == list("bgfedca")
    head = await index.read_head(ENTITY)
    assert [entry.key for entry in head.entries] == ["b", "g", "f"]
    assert list(head.entries) == await index.page(ENTITY, None, 3)


async def test_a_deleted_session_leaves_the_head_and_a_small_index_is_whole(indexed, index):
    app, host = indexed(_echo_agent())
    await _turns(host, ["a", "b", "c"])
    await _listing(host)
    assert (await index.read_head(ENTITY)).whole
    assert (await host.delete("WeatherAgent", "b"))[0] == 204
    await _written(app)
    head = await index.read_head(ENTITY)
    assert head.whole and [entry.key for entry in head.entries] == ["c", "a"]
    assert [s["sessionId"] for s in await _listing(host)] == ["c", "a"]


async def _stored_head(index: TableSessionIndex, **properties: Any) -> None:
    client = await index._table.client()
    await client.upsert_entity({"PartitionKey": ENTITY + HEAD_SUFFIX, "RowKey": HEAD_ROW, **properties})


@pytest.mark.parametrize(
    "damage",
    [
        "missing",
        {"format": 1, "valid": True, "whole": True, "parts": 1, "p0": "not json"},
        {"format": 1, "valid": True, "whole": True, "parts": 2, "p0": "[]"},  # a part missing
        {"format": 1, "valid": True, "whole": True, "parts": 1, "p0": '[["x","a","b"]]'},
        {"format": 99, "valid": True},
    ],
    ids=["missing", "not-json", "cut", "not-a-row", "other-format"],
)
async def test_a_missing_or_unreadable_head_is_made_again_from_the_index(indexed, index, damage):
    _, host = indexed(_echo_agent())
    await _turns(host, ["a", "b", "c"])
    await _listing(host)
    if damage == "missing":
        await index.drop_head(ENTITY)
    else:
        await _stored_head(index, **damage)
        assert not (await index.read_head(ENTITY)).valid
    status, body = await host.sessions("WeatherAgent", params={"top": "2"})
    assert status == 200 and [s["sessionId"] for s in body["sessions"]] == ["c", "b"]
    head = await index.read_head(ENTITY)
    assert head.valid and head.whole and [entry.key for entry in head.entries] == ["c", "b", "a"]


async def test_a_stale_head_that_claims_to_be_whole_is_repaired_by_the_reconciliation(
    indexed, index, monkeypatch
):
    """A head write lost after its rows' (a crash between them) hides a new session from the head
    until the reconciliation makes the head again; a session that moved is repaired when listed."""
    app, host = indexed(_echo_agent())
    await _turns(host, ["a", "b"])
    await _listing(host)

    async def lost(*args: Any) -> None:
        return None  # the process died after the rows were written

    monkeypatch.setattr(TableSessionIndex, "_merge_head", lost)
    await _turns(host, ["new", "a"])
    await _written(app)
    monkeypatch.undo()
    monkeypatch.setenv("AzureWebJobsStorage", index.connection_string)
    monkeypatch.setenv("DURABLEAGENT_SESSION_INDEX", index.table)
    monkeypatch.setattr(sessions_module, "REPAIR_AFTER", timedelta(0))
    assert {row.key for row in await index.page(ENTITY, None, 10)} == {"a", "b", "new"}
    assert [s["sessionId"] for s in await _listing(host)] == ["b", "a"]  # "a" at its older row
    assert [entry.key for entry in (await index.read_head(ENTITY)).entries] == ["a", "b"]  # repaired
    monkeypatch.setattr(sessions_module, "RECONCILE_SECONDS", 0.0)
    deadline = time.monotonic() + 10
    while [s["sessionId"] for s in await _listing(host)] != ["a", "new", "b"]:
        assert time.monotonic() < deadline, "the session the head missed never came back"
        await asyncio.sleep(0.05)


async def test_a_head_write_that_fails_drops_the_head_and_the_next_listing_makes_it(
    indexed, index, monkeypatch
):
    from azure.core.exceptions import HttpResponseError

    app, host = indexed(_echo_agent())
    await _turns(host, ["a", "b"])
    await _listing(host)

    async def refused(*args: Any) -> None:
        raise HttpResponseError("the head write failed")

    monkeypatch.setattr(TableSessionIndex, "_store_head", refused)
    await _turns(host, ["new"])
    await _written(app)
    monkeypatch.undo()
    monkeypatch.setenv("AzureWebJobsStorage", index.connection_string)
    monkeypatch.setenv("DURABLEAGENT_SESSION_INDEX", index.table)
    assert (await index.read_head(ENTITY)).etag is None  # dropped
    assert [s["sessionId"] for s in await _listing(host)] == ["new", "b", "a"]
    assert [entry.key for entry in (await index.read_head(ENTITY)).entries] == ["new", "b", "a"]


async def test_two_writers_merge_into_one_head_without_losing_an_entry(index):
    """Two processes' indexes (each with its own idea of the head's ETag) write one head."""
    other = TableSessionIndex(index.connection_string, index.table)
    when = datetime.now(UTC)
    try:
        await index.rebuild_head(ENTITY)  # an empty index: a whole, empty head
        # Strictly alternating: each write finds the head changed by the other since it last wrote.
        await index.put(ENTITY, "k1", when, None)
        await other.put(ENTITY, "k2", when + timedelta(seconds=1), None)
        await index.put(ENTITY, "k3", when + timedelta(seconds=2), None)
        head = await TableSessionIndex(index.connection_string, index.table).read_head(ENTITY)
        assert [entry.key for entry in head.entries] == ["k3", "k2", "k1"]

        # At once: 2 x 15 sessions, each writer a turn after the other's.
        async def writes(writer: TableSessionIndex, name: str) -> None:
            for number in range(15):
                await writer.put(ENTITY, f"{name}{number}", when + timedelta(seconds=10 + number), None)

        await asyncio.gather(writes(index, "x"), writes(other, "y"))
        head = await index.read_head(ENTITY)
        assert head.valid and head.whole and len(head.entries) == 33
        assert list(head.entries) == await index.page(ENTITY, None, 100)
    finally:
        await other.close()


def test_a_head_of_long_keys_holds_fewer_entries_and_reads_back(monkeypatch):
    monkeypatch.setattr(index_module, "HEAD_PART", 1000)
    monkeypatch.setattr(index_module, "HEAD_PARTS", 3)
    when = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        index_module.IndexRow(row_key(key, when), key, iso(when))
        for key in sorted((f"{n:03d}" + "ü" * 200 for n in range(10)), key=lambda key: row_key(key, when))
    ]
    head = index_module._trimmed(rows, True)
    assert 0 < len(head.entries) < len(rows) and not head.whole
    entity = index_module._head_entity(ENTITY, head)
    assert entity["parts"] == 3 and all(len(entity[f"p{n}"]) <= 1000 for n in range(3))

    class Stored(dict):
        metadata = {"etag": "e"}

    read = index_module._parsed_head(Stored(entity))
    assert read.valid and read.entries == head.entries and not read.whole


@pytest.mark.parametrize("before", ["no head", "a placeholder", "a short head"])
async def test_a_head_made_from_rows_read_before_a_writers_row_is_not_stored(index, monkeypatch, before):
    """A listing makes the head from a range query; a writer moves a row and writes the head right
    after that query: the listing's head (which misses the row) must not replace the writer's."""
    writer = TableSessionIndex(index.connection_string, index.table)
    when = datetime.now(UTC)
    try:
        await index.put(ENTITY, "old", when, None)  # no head: a placeholder
        if before == "no head":
            await index.drop_head(ENTITY)
        elif before == "a short head":
            await index.put(ENTITY, "older", when - timedelta(seconds=1), None)
            monkeypatch.setattr(index_module, "HEAD_SIZE", 1)
            await index.rebuild_head(ENTITY)
            monkeypatch.setattr(index_module, "HEAD_SIZE", 200)
        real_page = TableSessionIndex.page

        async def page_then_a_write(self: TableSessionIndex, *args: Any) -> Any:
            rows = await real_page(self, *args)
            if self is index:
                await writer.put(ENTITY, "new", when + timedelta(seconds=1), None)
            return rows

        monkeypatch.setattr(TableSessionIndex, "page", page_then_a_write)
        served = await index.head_page(ENTITY, None, 21)
        assert [row.key for row in served or []] == ["old", "older"][: 2 if before == "a short head" else 1]
        monkeypatch.undo()
        assert [row.key for row in await index.head_page(ENTITY, None, 21) or []][:2] == ["new", "old"]
    finally:
        await writer.close()


async def test_a_listing_whose_head_cannot_be_stored_still_lists(indexed, index, monkeypatch):
    from azure.core.exceptions import HttpResponseError

    _, host = indexed(_echo_agent())
    await _turns(host, ["a", "b"])
    await _listing(host)
    await index.drop_head(ENTITY)

    async def refused(*args: Any) -> None:
        raise HttpResponseError("the head write failed")

    async def no_listing(*args: Any) -> Any:
        raise AssertionError("the Durable HTTP API listing was read")

    monkeypatch.setattr(TableSessionIndex, "_store_head", refused)
    host.list_entities = no_listing  # type: ignore[method-assign]
    assert [s["sessionId"] for s in await _listing(host)] == ["b", "a"]  # from the index still
