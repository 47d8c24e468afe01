"""The table stream store on the session's Azurite: order and cursors, expiry, and the sweep."""

from __future__ import annotations

import uuid
from datetime import timedelta

from durableagent import TableStreamStore
from durableagent.streams import StreamEvent, StreamId, row_key


def _table() -> str:
    return "t" + uuid.uuid4().hex[:16]  # a table of the test's own


async def test_rows_come_back_in_order_after_a_cursor_and_attempts_sort_after_older_ones(azurite):
    store = TableStreamStore(azurite.connection_string, table=_table())
    stream = StreamId("dafx-a", "key/with#odd?chars", "c")
    await store.append(stream, [StreamEvent(9, 0, "start"), StreamEvent(9, 1, "text", {"text": "x"})])
    await store.append(stream, [StreamEvent(10, 0, "start")])  # a retried attempt
    await store.append(stream, [StreamEvent(9, 2, "text", {"text": "late"})])  # the old one, late
    rows = await store.read(stream, None)
    assert [(e.attempt, e.seq) for e in rows] == [(9, 0), (9, 1), (9, 2), (10, 0)]
    assert [(e.attempt, e.seq) for e in await store.read(stream, row_key(9, 1))] == [(9, 2), (10, 0)]
    assert rows[1].data == {"text": "x"}


async def test_expired_rows_are_not_read_and_the_sweep_deletes_them(azurite):
    table = _table()
    stale = TableStreamStore(azurite.connection_string, table=table, ttl=timedelta(seconds=-1))
    fresh = TableStreamStore(azurite.connection_string, table=table)
    old, new = StreamId("dafx-a", "k", "old"), StreamId("dafx-a", "k", "new")
    await stale.append(old, [StreamEvent(1, 0, "start"), StreamEvent(1, 1, "text", {"text": "gone"})])
    await fresh.append(new, [StreamEvent(2, 0, "start")])
    assert await fresh.read(old, None) == []
    assert await fresh.sweep() == 2
    assert [e.seq for e in await fresh.read(new, None)] == [0]
    assert await fresh.sweep() == 0
