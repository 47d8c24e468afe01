"""What a turn and an episode wait for on the local host (issue 21, item 4): the run route is woken by
its entity's commit, with the committed state, instead of polling the Durable API for it; the session
index write is made off the turn's path, yet a listing made after the turn shows the session; and a
short orchestration's history rides in its instance row, so an episode commits in one request."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

import fakes
from durableagent import turns
from durableagent._commits import COMMITS
from durableagent._session_index import TableSessionIndex
from harness.host import LocalHost
from harness.host.orchestrations.store import InstanceStore

from .conftest import REPO
from .test_host_orchestrations import ORCH_APP, start, wait_done

WEATHER_APP = REPO / "samples" / "weather"
SLOW_INDEX_SECONDS = 2.0


@pytest.fixture
async def weather(azurite_connstr: str, hub: str, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[str]:
    """The weather sample on an in-process local host (scripted fake model, an index table of its own)."""
    monkeypatch.setenv("DURABLEAGENT_CHAT_SCRIPT", str(fakes.WEATHER_SCRIPT_PATH))
    monkeypatch.setenv("DURABLEAGENT_SESSION_INDEX", "t" + uuid.uuid4().hex[:16])
    monkeypatch.setenv("DURABLEAGENT_STREAM_STORAGE", "off")
    async with LocalHost(WEATHER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        yield host.url


async def _turn(http: aiohttp.ClientSession, url: str, key: str, message: str) -> dict[str, Any]:
    body = {"message": message, "sessionId": key}
    async with http.post(f"{url}/api/agents/WeatherAgent/run", json=body) as resp:
        assert resp.status == 200, await resp.text()
        return dict(await resp.json())


async def test_a_turn_on_its_own_host_takes_its_reply_from_the_commit_without_a_read(
    weather: str, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
):
    reads: list[Any] = []
    real_read = turns.read_state

    async def counted(*args: Any) -> Any:
        reads.append(args)
        return await real_read(*args)

    monkeypatch.setattr(turns, "read_state", counted)
    for number in range(3):
        answer = await _turn(http, weather, "s1", f"weather in City{number}?")
        assert answer["status"] == "success" and answer["response"], answer
        assert answer["message_count"] == 2 * (number + 1)
    assert reads == []  # each reply came with its commit
    assert len(COMMITS) == 0  # nothing kept for sessions nobody waits on


async def test_a_slow_index_write_does_not_hold_up_the_turn_and_the_listing_still_shows_it(
    weather: str, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
):
    real_put = TableSessionIndex._put_rows  # the drain's row write (the head's comes after it)

    async def slow(*args: Any) -> None:
        await asyncio.sleep(SLOW_INDEX_SECONDS)
        await real_put(*args)

    monkeypatch.setattr(TableSessionIndex, "_put_rows", slow)
    began = time.monotonic()
    answer = await _turn(http, weather, "quick", "weather in Paris?")
    assert answer["status"] == "success"
    assert time.monotonic() - began < SLOW_INDEX_SECONDS / 2  # the index write came after the answer
    async with http.get(f"{weather}/api/agents/WeatherAgent", params={"top": "5"}) as resp:
        assert resp.status == 200, await resp.text()
        listed = (await resp.json())["sessions"]
    assert [s["sessionId"] for s in listed] == ["quick"] and listed[0]["message_count"] == 2


async def test_a_short_orchestrations_episodes_commit_in_one_request_each_and_read_back_whole(
    azurite_connstr: str, hub: str, http: aiohttp.ClientSession, monkeypatch: pytest.MonkeyPatch
):
    async with LocalHost(ORCH_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        assert host.instances is not None
        table = host.instances._table  # private: which requests a commit makes is what this is about
        history_rows: list[str] = []
        real_upsert = table.upsert_entity

        async def upsert(entity: Any, *args: Any, **kwargs: Any) -> Any:
            history_rows.append(entity["RowKey"])
            return await real_upsert(entity, *args, **kwargs)

        monkeypatch.setattr(table, "upsert_entity", upsert)
        links = await start(http, host, "hello_sequence", ["A", "B", "C"])
        done = await wait_done(http, links, showHistory="true")
        assert done["output"] == ["Hello A", "Hello B", "Hello C"]
        cached = host.instances.records.get(links["id"])[1]
        assert cached is not None
    assert history_rows == []  # its history rides in the instance row: one write per episode
    other = InstanceStore(azurite_connstr, hub)  # no cache: reads storage
    try:
        stored = await other.read(links["id"])
    finally:
        await other.close()
    assert stored is not None and stored.history == cached.history
    assert [e["EventType"] for e in done["historyEvents"]][-1] == "ExecutionCompleted"
