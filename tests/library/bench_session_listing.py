"""Session listing at scale: `GET /api/agents/WeatherAgent?top=20` p50 at 1,000, 10,000 and 100,000
sessions, against a turn's p50, on Azurite and an in-process local host (the weather sample on the
scripted fake model).

    python -m tests.library.bench_session_listing [--sizes 1000 10000 100000] [--repeat 30]

How the sizes are made: `REAL` sessions are real (one turn each, through the run route; their turns
give the turn p50) and are the newest. The rest of each size are index rows only, older than every
real one, written in bulk straight into the app's `dafxsessions` table with table batch
transactions (100 rows each, same partition, 4 in flight): a page of 20 newest sessions then reads
the index and 20 real states, exactly what it does with that many real sessions, and making 100,000
real sessions (a turn each) would take an hour.

Azurite's tables are not indexed: each write scans the table, so writing n rows takes time that
grows with n squared (1,000 rows 0.6 s, 10,000 rows 32 s here) and 100,000 would take about an hour
(and starve the host's lease renewals meanwhile); Azure's tables index PartitionKey and RowKey.

`--before N` also measures the listing without the index (`DURABLEAGENT_SESSION_INDEX=off`: every
session read from the Durable HTTP API and sorted) with N real sessions; it makes them, a turn each.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from azure.core.exceptions import AzureError

from durableagent._session_index import DEFAULT_TABLE, TableSessionIndex
from durableagent._storage import INDEX_ENV
from durableagent.session import entity_name_for

APP = Path(__file__).resolve().parents[2] / "samples" / "weather"
AGENT = "WeatherAgent"
REAL = 40
IN_FLIGHT = 4


async def _turn(client: httpx.AsyncClient, key: str) -> float:
    began = time.perf_counter()
    response = await client.post(
        f"/api/agents/{AGENT}/run", json={"message": "weather in Paris?", "sessionId": key}
    )
    response.raise_for_status()
    return (time.perf_counter() - began) * 1000


async def _list_p50(client: httpx.AsyncClient, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        response = await client.get(f"/api/agents/{AGENT}", params={"top": "20"})
        response.raise_for_status()
        assert len(response.json()["sessions"]) == 20, response.json()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def _query_p50(index: TableSessionIndex, repeat: int) -> float:
    """The index's page query alone (Azurite scans the table for it; Azure reads a key range)."""
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        await index.page(entity_name_for(AGENT), None, 21)
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


async def _written(index: TableSessionIndex, name: str, rows: list[tuple[str, datetime]]) -> None:
    """`put_many`, tried again when Azurite drops the connection (it does under a long bulk load)."""
    for attempt in range(8):
        try:
            await index.put_many(name, rows)
            return
        except AzureError:
            if attempt == 7:
                raise
            await asyncio.sleep(min(2.0**attempt, 10.0))


async def _bulk_rows(index: TableSessionIndex, count: int, oldest: datetime) -> float:
    """`count` index rows, each older than `oldest`, in batch transactions; returns seconds taken."""
    name = entity_name_for(AGENT)
    began = time.perf_counter()
    rows = [(f"bulk-{uuid.uuid4().hex}", oldest - timedelta(seconds=i + 1)) for i in range(count)]
    chunks = [rows[i : i + 100 * 10] for i in range(0, len(rows), 100 * 10)]
    for start in range(0, len(chunks), IN_FLIGHT):
        await asyncio.gather(*(_written(index, name, chunk) for chunk in chunks[start : start + IN_FLIGHT]))
    return time.perf_counter() - began


def _client(host: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=f"http://127.0.0.1:{host.port}", timeout=120)


async def main(sizes: list[int], repeat: int, before: int) -> None:
    from harness.azurite import Azurite
    from harness.host import LocalHost

    os.environ["DURABLEAGENT_CHAT_SCRIPT"] = str(Path(__import__("fakes").WEATHER_SCRIPT_PATH))
    with tempfile.TemporaryDirectory() as work:
        azurite = Azurite(Path(work)).start()
        storage = azurite.connection_string
        try:
            if before:
                os.environ[INDEX_ENV] = "off"
                async with LocalHost(APP, port=0, storage=storage, hub_name="before") as host:
                    async with _client(host) as client:
                        turns = [await _turn(client, uuid.uuid4().hex) for _ in range(before)]
                        listing = await _list_p50(client, repeat)
                        print(
                            f"before (no index), {before} real sessions: listing p50 {listing:.1f} ms, "
                            f"turn p50 {statistics.median(turns):.1f} ms"
                        )
                del os.environ[INDEX_ENV]
            async with LocalHost(APP, port=0, storage=storage, hub_name="after") as host:
                async with _client(host) as client:
                    await _turn(client, "warm-up")
                    turns = [await _turn(client, f"real-{i:03d}") for i in range(REAL)]
                    print(f"one turn p50: {statistics.median(turns):.1f} ms ({REAL} turns)")
                    await _list_p50(client, 1)  # the first listing reconciles the partition once
                    index = TableSessionIndex(azurite.connection_string, DEFAULT_TABLE)
                    oldest = datetime.now(UTC) - timedelta(days=1)
                    made = REAL + 1
                    for size in sorted(sizes):
                        seconds = await _bulk_rows(index, size - made, oldest - timedelta(hours=size))
                        made = size
                        p50 = await _list_p50(client, repeat)
                        query = await _query_p50(index, repeat)
                        print(
                            f"{size:>7} sessions: listing p50 {p50:.1f} ms, index query {query:.1f} ms "
                            f"(bulk rows written in {seconds:.1f} s)"
                        )
                    await index.close()
        finally:
            azurite.stop()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 10_000, 100_000])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--before", type=int, default=0, help="also measure without the index at N sessions")
    args = parser.parse_args()
    asyncio.run(main(args.sizes, args.repeat, args.before))
