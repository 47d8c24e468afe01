"""The store's write-through cache against real Azurite: never older than storage."""

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from harness.host.store import EntityRecord, EntityStore, instance_id


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
    """A read that has fetched its row from storage but returns only once `release` is set."""
    real_get = store._table.get_entity

    async def slow_get(*args, **kwargs):
        row = await real_get(*args, **kwargs)
        await release.wait()
        return row

    store._table.get_entity = slow_get  # type: ignore[method-assign]
    reader = asyncio.create_task(store.read(iid))
    await asyncio.sleep(0.2)
    store._table.get_entity = real_get  # type: ignore[method-assign]
    return reader


async def test_a_read_overlapping_a_commit_does_not_cache_the_older_state(
    store: EntityStore, azurite_connstr: str, hub: str
):
    iid = instance_id("counter", "race")
    await store.commit(None, "counter", "race", True, json.dumps(1), [])
    store._states.clear()  # as after a restart: the next read goes to storage
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
    store._states.clear()
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
    assert iid in store._states  # the absence is remembered: no storage round trip next time
    await store.commit(None, "counter", "new", True, json.dumps(1), [])
    record = await store.read(iid)
    assert record is not None and record.state == "1"
