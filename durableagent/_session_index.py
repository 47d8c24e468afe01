"""An index of an agent's sessions by last activity, so the session list route reads one page of it
instead of every session (the Durable HTTP API lists entities in id order only).

Where: one Azure Storage table (`dafxsessions`) in the app's own storage account, as the reply
streams (`AzureWebJobsStorage`: Azure and Azurite need no extra service). `PartitionKey` = the
entity name (`dafx-{agent}`), `RowKey` = `{10^17 - microseconds since the epoch:017d}.{key hash}`, so
a partition query in key order is newest first and a page after a continuation token (the last
`RowKey` sent) is one range query; the row holds the session key and its `last_activity`. The hash
(SHA-256, 128 bits) stands for the key because a key may hold characters a `RowKey` may not. One
row per partition, `~index`, records when the partition was last reconciled; listings skip it.

Who writes: the session entity, in the operation that changes the session's last activity (a turn,
a seed, a reset; the newest history entry's time): it upserts the new row and deletes the row of its
previous activity (idempotent: a retry writes the same rows). `delete` and TTL expiry remove the row
the same way. The write is off the turn's path (`write_later`): queued by the operation, it is made on
the agent loop a moment later, once the turn is committed and answered, together with the other
moves queued meanwhile (a table transaction per partition; moves of one session queued together
become one), in order per session; a listing in the same process first has the queued writes made
and waits for them (`flushed`), so a session shows in a listing made after its turn answered.

Why a crash or a lost write loses no session (a crash between the commit and the write is one): the
session state stays the truth, and the index only orders it. A row whose write was lost leaves the
session at its older row (the listing reads each listed session's state anyway, sees the row is not
its newest, writes the right one and drops the old); a row whose session is gone (a lost delete) is
dropped when listed; a session with no row at all (sessions from before the index, a first turn
whose write failed or was cut off) is found by reconciling the partition with the Durable HTTP API's
entity listing: inline on a partition's first listing (the backfill), then in the background when
the last one is older than `RECONCILE_SECONDS`.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from ._tables import LoopTable
from .loop import background_loop
from .state import AgentState

logger = logging.getLogger(__name__)

DEFAULT_TABLE = "dafxsessions"
META_ROW = "~index"
"""Sorts after every session row (digits): a listing stops before it."""
RECONCILE_SECONDS = 300.0
BATCH_LIMIT = 100  # operations per table transaction
WRITE_SECONDS = 5.0  # one index write (`write_later`) gives up after this long
DELAY = 0.05
"""Seconds a session's move waits (`write_later`): by then its turn is committed and answered."""
_INVERT = 10**17
_ROW_KEY = re.compile(r"\d{17}\.[0-9a-f]{32}")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


_FRACTION = re.compile(r"(\.\d{6})\d+")


def parse_time(text: object) -> datetime | None:
    """An ISO-8601 time from the Durable API or stored state (`Z`, up to 7 fraction digits as .NET
    writes them); None when absent or unreadable."""
    if not isinstance(text, str) or not text:
        return None
    try:
        stamp = datetime.fromisoformat(_FRACTION.sub(r"\1", text).replace("Z", "+00:00"))
    except ValueError:
        return None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=UTC)


def micros(when: datetime) -> int:
    return (when - _EPOCH) // timedelta(microseconds=1)


def activity_of(state: AgentState) -> datetime | None:
    """A session's last activity: its newest history entry's time (None with no history)."""
    newest = state.entry_from_end(1)
    return parse_time(newest.get("timestamp")) if newest is not None else None


def row_key(key: str, when: datetime) -> str:
    """The row of session `key` at activity `when`: newer sorts first, then by key hash."""
    digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:32]
    return f"{_INVERT - micros(when):017d}.{digest}"


def is_row_key(text: str) -> bool:
    return _ROW_KEY.fullmatch(text) is not None


def iso(when: datetime) -> str:
    """The listing's `last_activity` (UTC, microseconds, `Z`, as the Durable HTTP API writes times)."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class _Move:
    """A session's move in the index waiting to be written: from its row at `previous` (None: it
    has none) to one at `when` (None: removed)."""

    when: datetime | None
    previous: datetime | None


@dataclass(frozen=True)
class IndexRow:
    row_key: str
    key: str
    last_activity: str


class TableSessionIndex:
    """The index as table rows (see the module docstring); one async client per event loop."""

    def __init__(self, connection_string: str, table: str = DEFAULT_TABLE) -> None:
        self.connection_string = connection_string
        self.table = table
        self._table = LoopTable(connection_string, table)
        self._lock = threading.Lock()
        self._queued: dict[tuple[str, str], _Move] = {}  # one per session, in order
        self._scheduled = False  # a drain is due or under way
        self._drain_task: asyncio.Task[None] | None = None  # on the agent loop only

    def write_later(
        self, entity_name: str, key: str, when: datetime | None, previous: datetime | None
    ) -> None:
        """Move session `key` from its row at `previous` to one at `when` (None: remove it), soon
        and without waiting: the operation that calls this answers, and its state is committed,
        before the write is made (on the agent loop, `DELAY` seconds later, so it does not compete
        with the commit). What is queued meanwhile goes out together, one table transaction per
        partition, and moves of one session that wait together become one (the rows in between are
        never written). Writes go out one drain at a time, so a session's moves land in order. A
        write that fails is logged and costs only order in the listing, which repairs it."""
        session = (entity_name, key)
        with self._lock:
            queued = self._queued.get(session)
            if queued is not None:
                queued.when = when  # still waiting: from its `previous` straight to the newest
                return
            self._queued[session] = _Move(when, previous)
            if self._scheduled:
                return
            self._scheduled = True
        loop = background_loop()
        loop.call_soon_threadsafe(loop.call_later, DELAY, self._kick)

    def _kick(self) -> None:
        """On the agent loop: drain the queue, unless a drain is under way (it drains all)."""
        if self._drain_task is None or self._drain_task.done():
            self._drain_task = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        while True:
            with self._lock:
                moves, self._queued = self._queued, {}
                if not moves:
                    self._scheduled = False
                    return
            try:
                await asyncio.wait_for(self._write(moves), WRITE_SECONDS)
            except Exception as exc:
                logger.warning(
                    "session index not updated for %d session(s) (the listing repairs it): %s",
                    len(moves),
                    exc,
                )

    async def _write(self, moves: dict[tuple[str, str], _Move]) -> None:
        """Each partition's moves as transactions of up to BATCH_LIMIT operations; one move alone,
        a removal of every row of a key, and a transaction storage refuses (a row to delete that
        is gone already fails it whole) as single idempotent writes."""
        single: list[tuple[tuple[str, str], _Move]] = []
        batches: dict[str, list[tuple[tuple[str, str], _Move]]] = {}
        for session, move in moves.items():
            if move.when is None and move.previous is None:
                single.append((session, move))
            else:
                batches.setdefault(session[0], []).append((session, move))
        client = await self._table.client()
        for entity_name, listed in batches.items():
            for start in range(0, len(listed), BATCH_LIMIT // 2):
                chunk = listed[start : start + BATCH_LIMIT // 2]
                operations = [op for (_, key), move in chunk for op in _operations(entity_name, key, move)]
                if len(chunk) == 1 or len(operations) <= 1:
                    single.extend(chunk)
                    continue
                try:
                    await client.submit_transaction(operations)
                except Exception as exc:
                    logger.debug("index transaction refused (%s); writing its moves one by one", exc)
                    single.extend(chunk)
        await asyncio.gather(*(self._apply(session, move) for session, move in single))

    async def _apply(self, session: tuple[str, str], move: _Move) -> None:
        entity_name, key = session
        try:
            if move.when is None:
                await self.remove(entity_name, key, move.previous)
            else:
                await self.put(entity_name, key, move.when, move.previous)
        except Exception as exc:
            logger.warning(
                "session index not updated for %s/%s (the listing repairs it): %s", entity_name, key, exc
            )

    async def _flush(self) -> None:
        """On the agent loop: drain now what is queued, and wait for the drain."""
        while True:
            task = self._drain_task
            if task is not None and not task.done():
                await asyncio.wait([task])
            with self._lock:
                if not self._queued:
                    return
            self._kick()

    async def flushed(self, timeout: float = WRITE_SECONDS) -> None:
        """Wait (at most `timeout`) for the index writes this process has queued (`write_later`):
        a listing made after a turn answered shows that turn."""
        with self._lock:
            idle = not self._scheduled
        if not idle:
            future = asyncio.run_coroutine_threadsafe(self._flush(), background_loop())
            await asyncio.wait([asyncio.wrap_future(future)], timeout=timeout)

    async def close(self) -> None:
        """Close this loop's connections (an index outlives no loop in a host; tests make many)."""
        await self._table.close()

    async def put(self, entity_name: str, key: str, when: datetime, previous: datetime | None) -> None:
        """Move session `key` to activity `when` (from `previous`, whose row is deleted at the same
        time: one round trip instead of two; a crash that lets the delete land and not the upsert
        leaves a session without a row, which the listing's reconciliation finds, as it finds a lost
        first write)."""
        client = await self._table.client()
        new = row_key(key, when)
        writes = [client.upsert_entity(_row(entity_name, key, when))]
        if previous is not None and row_key(key, previous) != new:
            writes.append(self._delete(client, entity_name, row_key(key, previous)))
        await asyncio.gather(*writes)

    async def put_many(self, entity_name: str, sessions: Iterable[tuple[str, datetime]]) -> int:
        """Rows for many sessions at once (the backfill), in transactions of BATCH_LIMIT."""
        client = await self._table.client()
        rows = [_row(entity_name, key, when) for key, when in sessions]
        for start in range(0, len(rows), BATCH_LIMIT):
            await client.submit_transaction([("upsert", row) for row in rows[start : start + BATCH_LIMIT]])
        return len(rows)

    async def remove(self, entity_name: str, key: str, when: datetime | None) -> None:
        """Drop session `key`'s row (at `when`; every row of the key when that is not known)."""
        client = await self._table.client()
        if when is not None:
            await self._delete(client, entity_name, row_key(key, when))
            return
        async for row in client.query_entities(
            "PartitionKey eq @pk and key eq @key",
            parameters={"pk": entity_name, "key": key},
            select=["RowKey"],
        ):
            await self._delete(client, entity_name, row["RowKey"])

    async def drop(self, entity_name: str, row: str) -> None:
        """Drop one row (stale: its session moved on or is gone)."""
        await self._delete(await self._table.client(), entity_name, row)

    async def page(self, entity_name: str, after: str | None, count: int) -> list[IndexRow]:
        """Up to `count` rows after row key `after`, newest first."""
        client = await self._table.client()
        query = "PartitionKey eq @pk and RowKey gt @after and RowKey lt @meta"
        parameters = {"pk": entity_name, "after": after or "", "meta": META_ROW}
        rows: list[IndexRow] = []
        async for entity in client.query_entities(query, parameters=parameters, results_per_page=count):
            rows.append(_index_row(entity))
            if len(rows) >= count:
                break
        return rows

    async def has(self, entity_name: str, row: str) -> bool:
        from azure.core.exceptions import ResourceNotFoundError

        client = await self._table.client()
        try:
            await client.get_entity(entity_name, row, select=["RowKey"])
        except ResourceNotFoundError:
            return False
        return True

    async def keys(self, entity_name: str) -> set[str]:
        """Every indexed session key of the partition (the reconciliation's side of the comparison)."""
        client = await self._table.client()
        query = "PartitionKey eq @pk and RowKey lt @meta"
        parameters = {"pk": entity_name, "meta": META_ROW}
        return {
            row["key"] async for row in client.query_entities(query, parameters=parameters, select=["key"])
        }

    async def reconciled(self, entity_name: str) -> datetime | None:
        """When the partition was last reconciled; None when never (its first listing backfills)."""
        from azure.core.exceptions import ResourceNotFoundError

        client = await self._table.client()
        try:
            row = await client.get_entity(entity_name, META_ROW)
        except ResourceNotFoundError:
            return None
        when = row.get("reconciled")
        return when if isinstance(when, datetime) else None

    async def mark_reconciled(self, entity_name: str, when: datetime) -> None:
        client = await self._table.client()
        await client.upsert_entity({"PartitionKey": entity_name, "RowKey": META_ROW, "reconciled": when})

    @staticmethod
    async def _delete(client: Any, entity_name: str, row: str) -> None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            await client.delete_entity(entity_name, row)
        except ResourceNotFoundError:
            pass  # deleted already: a retry, or a repair that came first


def _row(entity_name: str, key: str, when: datetime) -> dict[str, Any]:
    return {"PartitionKey": entity_name, "RowKey": row_key(key, when), "key": key, "last_activity": iso(when)}


def _operations(entity_name: str, key: str, move: _Move) -> list[tuple[str, dict[str, Any]]]:
    """A move as transaction operations: the new row's upsert, the previous row's delete."""
    operations: list[tuple[str, dict[str, Any]]] = []
    new = row_key(key, move.when) if move.when is not None else None
    if move.when is not None:
        operations.append(("upsert", _row(entity_name, key, move.when)))
    if move.previous is not None and row_key(key, move.previous) != new:
        old = {"PartitionKey": entity_name, "RowKey": row_key(key, move.previous)}
        operations.append(("delete", old))
    return operations


def _index_row(entity: Any) -> IndexRow:
    return IndexRow(str(entity["RowKey"]), str(entity.get("key")), str(entity.get("last_activity")))
