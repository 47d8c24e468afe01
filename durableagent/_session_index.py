"""An index of an agent's sessions by last activity, so the session list route reads one page of it
instead of every session (the Durable HTTP API lists entities in id order only).

Where: one Azure Storage table (`dafxsessions`) in the app's own storage account, as the reply
streams (`AzureWebJobsStorage`: Azure and Azurite need no extra service). `PartitionKey` = the
entity name (`dafx-{agent}`), `RowKey` = `{10^17 - microseconds since the epoch:017d}.{key hash}`, so
a partition query in key order is newest first and a page after a continuation token (the last
`RowKey` sent) is one range query; the row holds the session key and its `last_activity`. The hash
(SHA-256, 128 bits) stands for the key because a key may hold characters a `RowKey` may not. One
row per partition, `~index`, records when the partition was last reconciled; listings skip it.

The head: the newest `HEAD_SIZE` rows of a partition again, as one row of its own partition
(`PartitionKey` = `{entity name}~head`, `RowKey` = `head`; `~` is in no agent name), their row keys,
session keys and times as JSON in string properties `p0`, `p1`, ... (`parts` of them; at most
`HEAD_PART` characters each, `HEAD_PARTS` in all: a head of long keys holds fewer rows), `whole`
when they are the whole partition, `valid` False for a placeholder. It holds exactly the index's
rows up to its last entry (`whole`: all of them), so a page within it is the index's page: a
listing's first page (and the next ones while they fall within it) is one point read of the head
instead of a range query. Why: a point read in a partition of one row costs the same at any size,
on Azure and on Azurite, where every query filters and sorts the whole table (25 ms at 100,000
rows). A head that is missing, a placeholder, unreadable, or too short for a first page is made
again by the listing from one range query of the index (`rebuild_head`).

Who writes: the session entity, in the operation that changes the session's last activity (a turn,
a seed, a reset; the newest history entry's time): it upserts the new row and deletes the row of its
previous activity (idempotent: a retry writes the same rows). `delete` and TTL expiry remove the row
the same way. The write is off the turn's path (`write_later`): queued by the operation, it is made on
the agent loop a moment later, once the turn is committed and answered, together with the other
moves queued meanwhile (a table transaction per partition; moves of one session queued together
become one), in order per session; a listing in the same process first has the queued writes made
and waits for them (`flushed`), so a session shows in a listing made after its turn answered.
Each drain then writes the head once per partition, after the rows (as do `put`, `remove`, `drop`
and `put_many`): it merges the moves whose rows were written (rows added where the head covers the
index, deleted rows and sessions out, cut to its size), writing with the ETag it read (or creating
it when there is none) and merging again when another writer came first. A head being made again
from the index is written only if its ETag did not change since it was read, before the range
query: a writer that wrote a row after that wrote the head after it, so a query that missed the row
fails its write. A writer finding no head leaves a placeholder for that reason, and writes a
placeholder again unchanged.

Why a crash or a lost write loses no session (a crash between the commit and the write is one): the
session state stays the truth, and the index only orders it. A row whose write was lost leaves the
session at its older row (the listing reads each listed session's state anyway, sees the row is not
its newest, writes the right one and drops the old); a row whose session is gone (a lost delete) is
dropped when listed; a session with no row at all (sessions from before the index, a first turn
whose write failed or was cut off) is found by reconciling the partition with the Durable HTTP API's
entity listing: inline on a partition's first listing (the backfill), then in the background when
the last one is older than `RECONCILE_SECONDS`.

Why a crash or a lost write of the head loses no session either: the head is written after the
rows, so it is at most behind them. A head write that fails (after its retries) drops the head, and
the next listing makes it again from the index. A crash (or a write cut off by `WRITE_SECONDS`)
between the rows and the head leaves the head without the moves: a session that moved is listed at
its previous row, which the listing repairs as above (the repair writes the head too); a new session
is missing from the head until the reconciliation, which makes the head again from the index each
time (so, as for a lost row, at most `RECONCILE_SECONDS` after a listing).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import random
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
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
HEAD_SIZE = 200
"""Entries the head keeps: the newest of the index (a page of up to 100 and the next one's first)."""
HEAD_SUFFIX = "~head"
"""The head's partition is the entity name and this (`~` is in no agent name: no partition clash)."""
HEAD_ROW = "head"
HEAD_PART = 30_000
"""Characters of the head's JSON per string property (a property holds at most 32,768 UTF-16 units)."""
HEAD_PARTS = 8
"""String properties the head's JSON may use (long session keys cost entries, not the 1 MiB limit).
An entry is at most about 1,650 characters (a 256-unit key, escaped), so a head holds at least 140:
more than a page of `MAX_TOP` needs, so a head is never too short for a page by its size."""
HEAD_ATTEMPTS = 8  # a head write that meets another's change reads it again, this many times at most
HEAD_BACKOFF = 0.004  # seconds, doubled at each conflict; a random part of it is waited
HEAD_FORMAT = 1
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


@dataclass(frozen=True)
class Head:
    """The head as read: its entries in row key order, whether they are the whole index, and its
    ETag (None: there is no head row). `valid` False: a placeholder or an unreadable row, which a
    listing replaces by reading the index (`rebuild_head`)."""

    entries: tuple[IndexRow, ...]
    whole: bool
    etag: str | None
    valid: bool

    def after(self, token: str | None) -> list[IndexRow]:
        return [entry for entry in self.entries if token is None or entry.row_key > token]


_NO_HEAD = Head((), False, None, False)


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
        self._heads: dict[str, Head] = {}
        """Each partition's head as this object last read or wrote it: a writer tries its ETag first
        (one request instead of two while no other process writes the head)."""

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
        is gone already fails it whole) as single idempotent writes. Then, once per partition, the
        moves whose rows were written go into the head (after their rows: see the module docstring)."""
        single: list[tuple[tuple[str, str], _Move]] = []
        batches: dict[str, list[tuple[tuple[str, str], _Move]]] = {}
        for session, move in moves.items():
            if move.when is None and move.previous is None:
                single.append((session, move))
            else:
                batches.setdefault(session[0], []).append((session, move))
        changes: dict[str, _HeadChange] = {}
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
                    continue
                for (_, key), move in chunk:
                    changes.setdefault(entity_name, _HeadChange()).note(key, move)
        written = await asyncio.gather(*(self._apply(session, move) for session, move in single))
        for ((entity_name, key), move), ok in zip(single, written, strict=True):
            if ok:
                changes.setdefault(entity_name, _HeadChange()).note(key, move)
        await asyncio.gather(*(self._merge_head(name, change) for name, change in changes.items()))

    async def _apply(self, session: tuple[str, str], move: _Move) -> bool:
        """One move's rows; whether they were written."""
        entity_name, key = session
        try:
            if move.when is None:
                await self._remove_rows(entity_name, key, move.previous)
            else:
                await self._put_rows(entity_name, key, move.when, move.previous)
        except Exception as exc:
            logger.warning(
                "session index not updated for %s/%s (the listing repairs it): %s", entity_name, key, exc
            )
            return False
        return True

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
        first write), then in the head."""
        await self._put_rows(entity_name, key, when, previous)
        change = _HeadChange()
        change.note(key, _Move(when, previous))
        await self._merge_head(entity_name, change)

    async def _put_rows(self, entity_name: str, key: str, when: datetime, previous: datetime | None) -> None:
        client = await self._table.client()
        new = row_key(key, when)
        writes = [client.upsert_entity(_row(entity_name, key, when))]
        if previous is not None and row_key(key, previous) != new:
            writes.append(self._delete(client, entity_name, row_key(key, previous)))
        await asyncio.gather(*writes)

    async def put_many(self, entity_name: str, sessions: Iterable[tuple[str, datetime]]) -> int:
        """Rows for many sessions at once (the backfill), in transactions of BATCH_LIMIT, then in
        the head."""
        client = await self._table.client()
        rows = [_row(entity_name, key, when) for key, when in sessions]
        for start in range(0, len(rows), BATCH_LIMIT):
            await client.submit_transaction([("upsert", row) for row in rows[start : start + BATCH_LIMIT]])
        if rows:
            await self._merge_head(entity_name, _HeadChange(adds=[_index_row(row) for row in rows]))
        return len(rows)

    async def remove(self, entity_name: str, key: str, when: datetime | None) -> None:
        """Drop session `key`'s row (at `when`; every row of the key when that is not known), and
        the session from the head."""
        await self._remove_rows(entity_name, key, when)
        change = _HeadChange()
        change.note(key, _Move(None, when))
        await self._merge_head(entity_name, change)

    async def _remove_rows(self, entity_name: str, key: str, when: datetime | None) -> None:
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

    async def drop(self, entity_name: str, row: str, newer: IndexRow | None = None) -> None:
        """Drop one row (stale: its session moved on or is gone), in the head too; `newer`: the
        session's own row, which exists, and which the head then holds (a head that missed it, a
        head write lost, gets it back here)."""
        await self._delete(await self._table.client(), entity_name, row)
        await self._merge_head(entity_name, _HeadChange(adds=[newer] if newer else [], removes={row}))

    async def page(self, entity_name: str, after: str | None, count: int) -> list[IndexRow]:
        """Up to `count` rows after row key `after`, newest first (a range query)."""
        client = await self._table.client()
        query = "PartitionKey eq @pk and RowKey gt @after and RowKey lt @meta"
        parameters = {"pk": entity_name, "after": after or "", "meta": META_ROW}
        rows: list[IndexRow] = []
        async for entity in client.query_entities(query, parameters=parameters, results_per_page=count):
            rows.append(_index_row(entity))
            if len(rows) >= count:
                break
        return rows

    # -- the head ----------------------------------------------------------------------------------
    async def head_page(self, entity_name: str, after: str | None, count: int) -> list[IndexRow] | None:
        """Up to `count` rows after row key `after`, newest first, from the head when it can tell
        them all (it holds that many after `after`, or it is the whole index); None when it cannot
        (the range query `page` must). A missing or placeholder head is made again from the index
        first, and so is a head too short for a first page."""
        head = await self.read_head(entity_name)
        if not head.valid or (after is None and not head.whole and len(head.entries) < count):
            head = await self.rebuild_head(entity_name, head, attempts=1)
        rows = head.after(after)
        if len(rows) >= count or head.whole:
            return rows[:count]
        return None

    async def read_head(self, entity_name: str) -> Head:
        """The head as stored now: one point read, in a partition of its own."""
        from azure.core.exceptions import ResourceNotFoundError

        client = await self._table.client()
        try:
            entity = await client.get_entity(entity_name + HEAD_SUFFIX, HEAD_ROW)
        except ResourceNotFoundError:
            head = _NO_HEAD
        else:
            head = _parsed_head(entity)
        self._heads[entity_name] = head
        return head

    async def rebuild_head(
        self, entity_name: str, head: Head | None = None, attempts: int = HEAD_ATTEMPTS
    ) -> Head:
        """The head made again from the index (one range query of HEAD_SIZE + 1 rows) and written
        in place of `head`, the head as read before the query (read here when not given), only if
        nobody wrote it since: a writer that moved a row since then wrote the head after its row,
        and the query may have missed that row. Such a write is tried again, with the head and the
        rows read again, up to `attempts` times. Returns what the query read (the index's newest
        rows when read), stored or not: a write that fails is logged, and the next listing tries."""
        built = _NO_HEAD
        for attempt in range(attempts):
            if head is None or attempt:
                head = await self.read_head(entity_name)
            rows = await self.page(entity_name, None, HEAD_SIZE + 1)
            built = _trimmed(rows, len(rows) <= HEAD_SIZE)
            try:
                return await self._store_head(entity_name, built, head.etag)
            except _HeadConflict:
                logger.debug("session index head of %s changed while being made again", entity_name)
            except Exception as exc:
                logger.warning("session index head of %s not stored: %s", entity_name, exc)
                break
        return built

    async def drop_head(self, entity_name: str) -> None:
        """Delete the head: the next listing makes it again from the index."""
        from azure.core.exceptions import ResourceNotFoundError

        self._heads.pop(entity_name, None)
        client = await self._table.client()
        try:
            await client.delete_entity(entity_name + HEAD_SUFFIX, HEAD_ROW)
        except ResourceNotFoundError:
            pass

    async def _merge_head(self, entity_name: str, change: _HeadChange) -> None:
        """Moved rows into the head, whose ETag guards the write (read again and merged again when
        another writer came first). A placeholder head is written again, unchanged: a listing that
        is making it from the index may have read the rows before this writer's, and its write must
        fail. A write that cannot be made drops the head, so the next listing makes it again from
        the index; never raises (the rows are written: the head only orders them)."""
        try:
            head = self._heads.get(entity_name)  # as last seen here: its ETag is tried first
            fresh = head is None
            conflicts = 0
            while True:
                if head is None:
                    head, fresh = await self.read_head(entity_name), True
                merged = _merged(head, change) if head.valid else head
                if head.valid and merged == head and not change.adds:
                    if fresh:
                        return  # nothing of this writer's in the head's range: no rebuild can miss it
                    head = None  # as last seen here: it may hold the rows since
                    continue
                try:
                    await self._store_head(entity_name, merged, head.etag)
                    return
                except _HeadConflict:
                    conflicts += 1
                    if conflicts >= HEAD_ATTEMPTS:
                        raise
                    await asyncio.sleep(random.uniform(0, HEAD_BACKOFF * 2**conflicts))
                    head = None
        except Exception as exc:
            logger.warning(
                "session index head of %s not written (%s); dropping it, the next listing makes it again",
                entity_name,
                exc,
            )
            try:
                await self.drop_head(entity_name)
            except Exception as dropped:
                logger.warning("session index head of %s not dropped either: %s", entity_name, dropped)

    async def _store_head(self, entity_name: str, head: Head, etag: str | None) -> Head:
        """Write `head` if the stored one still has `etag` (None: if there is none); `_HeadConflict`
        if not."""
        from azure.core import MatchConditions
        from azure.core.exceptions import HttpResponseError
        from azure.data.tables import UpdateMode

        client = await self._table.client()
        entity = _head_entity(entity_name, head)
        try:
            if etag is None:
                metadata = await client.create_entity(entity)
            else:
                metadata = await client.update_entity(
                    entity, mode=UpdateMode.REPLACE, etag=etag, match_condition=MatchConditions.IfNotModified
                )
        except HttpResponseError as exc:
            if exc.status_code in (404, 409, 412):  # deleted, created, changed since it was read
                self._heads.pop(entity_name, None)
                raise _HeadConflict(str(exc)) from exc
            raise
        stored = Head(head.entries, head.whole, metadata.get("etag"), head.valid)
        self._heads[entity_name] = stored
        return stored

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


class _HeadConflict(Exception):
    """The head was changed (or created, or dropped) since it was read."""


@dataclass
class _HeadChange:
    """What moves do to the head: rows written, rows deleted, sessions gone (every row of theirs)."""

    adds: list[IndexRow] = field(default_factory=list)
    removes: set[str] = field(default_factory=set)
    forget: set[str] = field(default_factory=set)

    def note(self, key: str, move: _Move) -> None:
        if move.when is not None:
            self.adds.append(IndexRow(row_key(key, move.when), key, iso(move.when)))
        if move.previous is not None:
            self.removes.add(row_key(key, move.previous))
        elif move.when is None:
            self.forget.add(key)  # every row of the session was deleted


def _merged(head: Head, change: _HeadChange) -> Head:
    """`change` applied to a valid head. A row is added only where the head covers the index (up to
    its last entry, or everywhere when whole): past it, rows the head does not hold may come first."""
    bound = head.entries[-1].row_key if head.entries else ""
    held = {
        entry.row_key: entry
        for entry in head.entries
        if entry.row_key not in change.removes and entry.key not in change.forget
    }
    for row in change.adds:
        if head.whole or row.row_key <= bound:
            held[row.row_key] = row
    merged = _trimmed([held[row] for row in sorted(held)], head.whole)
    return Head(merged.entries, merged.whole, head.etag, True)


def _trimmed(entries: list[IndexRow], whole: bool) -> Head:
    """At most HEAD_SIZE entries and HEAD_PARTS * HEAD_PART characters of JSON, newest kept (a cut
    head is not whole)."""
    if len(entries) > HEAD_SIZE:
        entries, whole = entries[:HEAD_SIZE], False
    sizes = [len(_entry_json(entry)) + 1 for entry in entries]
    total = 1 + sum(sizes)
    while entries and total > HEAD_PART * HEAD_PARTS:
        total -= sizes.pop()
        entries, whole = entries[:-1], False
    return Head(tuple(entries), whole, None, True)


def _entry_json(entry: IndexRow) -> str:
    return json.dumps([entry.row_key, entry.key, entry.last_activity], separators=(",", ":"))


def _head_entity(entity_name: str, head: Head) -> dict[str, Any]:
    """The head as a table entity: its JSON (ASCII) cut into string properties `p0`, `p1`, ..."""
    text = "[" + ",".join(_entry_json(entry) for entry in head.entries) + "]"
    parts = [text[start : start + HEAD_PART] for start in range(0, len(text), HEAD_PART)]
    entity: dict[str, Any] = {
        "PartitionKey": entity_name + HEAD_SUFFIX,
        "RowKey": HEAD_ROW,
        "format": HEAD_FORMAT,
        "valid": head.valid,
        "whole": head.whole,
        "parts": len(parts),
    }
    entity.update({f"p{number}": part for number, part in enumerate(parts)})
    return entity


def _parsed_head(entity: Any) -> Head:
    """A stored head; an unreadable one (another format, cut, hand-edited) reads as a placeholder."""
    etag = entity.metadata.get("etag") if hasattr(entity, "metadata") else None
    try:
        if entity.get("format") != HEAD_FORMAT or entity.get("valid") is not True:
            raise ValueError("a placeholder or another format")
        text = "".join(entity[f"p{number}"] for number in range(int(entity["parts"])))
        items = json.loads(text)
        entries = tuple(IndexRow(*item) for item in items)
        keys = [entry.row_key for entry in entries]
        if not all(
            isinstance(item, list) and len(item) == 3 and all(isinstance(part, str) for part in item)
            for item in items
        ) or not all(map(is_row_key, keys)):
            raise ValueError("an entry is not an index row")
        if keys != sorted(set(keys)):
            raise ValueError("entries out of order")
        return Head(entries, entity.get("whole") is True, etag, True)
    except (KeyError, TypeError, ValueError) as exc:
        if entity.get("valid") is True:
            logger.warning("session index head %s unreadable (%s)", entity.get("PartitionKey"), exc)
        return Head((), False, etag, False)
