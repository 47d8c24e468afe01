"""The store's write-through cache against real Azurite: never older than storage."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest
from azure.data.tables.aio import TableClient

from harness.host.entities.store import (
    ConcurrencyConflict,
    EntityRecord,
    EntityStore,
    instance_id,
)
from harness.host.storage.tables import MAX_PARTS, PART_CHARS


@pytest.fixture
async def store(azurite_connstr: str, hub: str) -> AsyncIterator[EntityStore]:
    opened = EntityStore(azurite_connstr, hub)
    await opened.open()
    yield opened
    await opened.close()


async def _read_uncached(connstr: str, hub: str, iid: str) -> EntityRecord | None:
    """What storage itself holds (a second store, as another process would see it)."""
    other = EntityStore(connstr, hub)
    try:
        return await other.read(iid)
    finally:
        await other.close()


async def _start_slow_read(
    store: EntityStore, iid: str, release: asyncio.Event
) -> asyncio.Task[EntityRecord | None]:
    """A read that has fetched its row from storage but returns only once `release` is set.

    Holding a read between its storage round trip and its return needs the store's table client
    (private): no public call lets a test stop a read half-way.
    """
    real_get = store._table.get_entity
    fetched = asyncio.Event()

    async def slow_get(*args, **kwargs):
        row = await real_get(*args, **kwargs)
        fetched.set()
        await release.wait()
        return row

    store._table.get_entity = slow_get  # type: ignore[method-assign]
    try:
        reader = asyncio.create_task(store.read(iid))
        await asyncio.wait_for(fetched.wait(), 10)  # the read has the row storage held
    finally:
        store._table.get_entity = real_get  # type: ignore[method-assign]
    return reader


async def _clean_ups_done(store: EntityStore) -> None:
    """Wait for the store's background clean-ups (deleting applied signal rows and unused blobs).

    Private, as no public call waits for them; storage alone would not do: it shows a row gone a
    moment before the clean-up records the deletion, which the next commit relies on.
    """
    await asyncio.gather(*store._cleanups)


async def test_a_read_overlapping_a_commit_does_not_cache_the_older_state(
    store: EntityStore, azurite_connstr: str, hub: str
):
    iid = instance_id("counter", "race")
    await store.commit(None, "counter", "race", True, json.dumps(1), [])
    store.states.fail()  # as after a restart: the next read goes to storage
    release = asyncio.Event()
    reader = await _start_slow_read(store, iid, release)  # it has the old row; a commit lands meanwhile
    before = await _read_uncached(azurite_connstr, hub, iid)
    assert before is not None
    await store.commit(before, "counter", "race", True, json.dumps(2), [])
    release.set()
    assert (await reader).state == "1"  # the overlapping read saw the old row...
    cached = await store.read(iid)
    assert cached is not None and cached.state == "2"  # ...but did not replace the newer one
    await store.commit(cached, "counter", "race", True, json.dumps(3), [])  # its ETag is current
    fresh = await _read_uncached(azurite_connstr, hub, iid)
    assert fresh is not None and fresh.state == "3"


async def test_purge_during_a_read_leaves_nothing_cached(store: EntityStore, azurite_connstr: str, hub: str):
    iid = instance_id("counter", "gone")
    await store.commit(None, "counter", "gone", True, json.dumps(5), [])
    store.states.fail()
    release = asyncio.Event()
    reader = await _start_slow_read(store, iid, release)
    assert await store.purge(iid)
    release.set()
    await reader
    assert await store.read(iid) is None
    assert await _read_uncached(azurite_connstr, hub, iid) is None


async def test_absence_is_cached_until_a_commit_creates_the_entity(store: EntityStore):
    iid = instance_id("counter", "new")
    assert await store.read(iid) is None
    assert store.states.get(iid) == (True, None)  # the absence is remembered: no storage round trip next time
    await store.commit(None, "counter", "new", True, json.dumps(1), [])
    record = await store.read(iid)
    assert record is not None and record.state == "1"


def _raw_table(connstr: str, store: EntityStore) -> TableClient:
    """The store's table through the Azure SDK alone: what storage holds, written as another process would."""
    return TableClient.from_connection_string(connstr, store.table_name)


async def _signal_rows(connstr: str, store: EntityStore, iid: str) -> list[str]:
    async with _raw_table(connstr, store) as table:
        rows = table.query_entities("PartitionKey eq @pk", parameters={"pk": iid})
        return [row["RowKey"] async for row in rows if row["RowKey"].startswith("sig-")]


async def test_applied_signal_rows_are_skipped_until_cleaned_up(
    store: EntityStore, azurite_connstr: str, hub: str
):
    iid = instance_id("counter", "applied")
    first = await store.add_signal("counter", "applied", "add", json.dumps("1"))
    await store.commit(None, "counter", "applied", True, json.dumps(1), [first])
    await _clean_ups_done(store)
    # As after a crash between the commit and the clean-up: the row is back, the state lists it.
    async with _raw_table(azurite_connstr, store) as table:
        await table.create_entity({"PartitionKey": iid, "RowKey": first.row_key, "op": "add"})
    second = await store.add_signal("counter", "applied", "add", json.dumps("2"))
    assert await _signal_rows(azurite_connstr, store, iid) == [first.row_key, second.row_key]
    restarted = EntityStore(azurite_connstr, hub)
    try:
        assert [s.row_key for s in await restarted.pending(iid)] == [second.row_key]
        before = await restarted.read(iid)
        await restarted.commit(before, "counter", "applied", True, json.dumps(3), [second])
        await _clean_ups_done(restarted)
        assert await _signal_rows(azurite_connstr, store, iid) == []
        assert await restarted.pending(iid) == []
        # The next commit drops the deleted keys from the list, so it does not grow.
        await restarted.commit(await restarted.read(iid), "counter", "applied", True, json.dumps(4), [])
        restarted.states.fail()
        record = await restarted.read(iid)
        assert record is not None and record.applied == frozenset() and record.state == "4"
    finally:
        await restarted.close()


async def test_deleting_rows_tolerates_rows_already_gone(store: EntityStore, azurite_connstr: str):
    """A purge or a retried drop may meet rows a clean-up already deleted."""
    iid = instance_id("counter", "gone-rows")
    kept = await store.add_signal("counter", "gone-rows", "add", json.dumps("1"))
    await store.delete_rows(iid, [kept.row_key, "sig-00000000000000000001"])
    assert await _signal_rows(azurite_connstr, store, iid) == []


async def test_purge_waits_for_the_clean_up_of_applied_rows(
    store: EntityStore, azurite_connstr: str, hub: str
):
    iid = instance_id("counter", "purged")
    signals = [await store.add_signal("counter", "purged", "add", json.dumps("1")) for _ in range(20)]
    await store.commit(None, "counter", "purged", True, json.dumps(20), signals)
    # The clean-up of the 20 applied rows is still under way (private: nothing public shows it).
    assert store._cleanups
    assert await store.purge(iid)
    assert await _signal_rows(azurite_connstr, store, iid) == []
    assert await _read_uncached(azurite_connstr, hub, iid) is None


@pytest.mark.parametrize("from_storage", [False, True], ids=["cached", "read-from-storage"])
async def test_a_long_state_rewrites_only_its_changed_parts(
    store: EntityStore, azurite_connstr: str, hub: str, from_storage: bool
):
    """Each commit sends only the parts that differ, yet storage always holds exactly the new text:
    through growth, shrinking, a state short enough for one property and one long enough for a blob;
    whether the commit starts from the record it cached or from the row as storage holds it."""
    iid = instance_id("notes", f"parts-{from_storage}")
    head = "a" * (3 * PART_CHARS)
    texts = [
        head + "b" * 100,
        head + "c" * 200,  # only the fourth part changes
        head[: 2 * PART_CHARS] + "d" * 100,  # three parts: the row keeps a stale one past the count
        head + "e" * (2 * PART_CHARS),  # five parts again, over the stale ones
        "small",
        head + "f",
        "g" * (PART_CHARS * MAX_PARTS + 1),  # a blob
        head + "h",
    ]
    # What each commit sends is only visible on the store's table client (private).
    sent: list[set[str]] = []
    real_update = store._table.update_entity

    async def recording_update(entity, *args, **kwargs):
        sent.append({name for name in entity if name.startswith("state")})
        return await real_update(entity, *args, **kwargs)

    store._table.update_entity = recording_update  # type: ignore[method-assign]
    before = None
    for text in texts:
        await store.commit(before, "notes", f"parts-{from_storage}", True, text, [])
        if from_storage:
            store.states.fail()
        before = await store.read(iid)
        stored = await _read_uncached(azurite_connstr, hub, iid)
        assert stored is not None and stored.state == text
    assert sent[0] == {"state3", "stateParts"}
    assert sent[1] == {"state2", "stateParts"}
    assert sent[2] == {"state2", "state3", "state4", "stateParts"}
    assert sent[3] == {"state"}  # one property: the row is replaced, stale parts go
    assert sent[4] == {"state", "state1", "state2", "state3", "stateParts"}


async def test_a_part_write_from_a_stale_read_is_refused(store: EntityStore, azurite_connstr: str, hub: str):
    iid = instance_id("notes", "stale")
    head = "a" * (2 * PART_CHARS)
    await store.commit(None, "notes", "stale", True, head + "1", [])
    stale = await store.read(iid)
    await store.commit(stale, "notes", "stale", True, head + "2", [])
    with pytest.raises(ConcurrencyConflict):
        await store.commit(stale, "notes", "stale", True, head + "3", [])
    stored = await _read_uncached(azurite_connstr, hub, iid)
    assert stored is not None and stored.state == head + "2"
