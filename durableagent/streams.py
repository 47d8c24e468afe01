"""Per-turn reply streams: what a streaming turn has produced so far, for Server-Sent Events.

Where: one Azure Storage table (`dafxstreams` by default) in the app's own storage account
(`AzureWebJobsStorage`, so Azure and Azurite need no extra service). A turn's stream is one
partition (`PartitionKey` = SHA-256 of entity name, session key and correlation id: any key is
usable, none can clash); each row is one event, `RowKey` = `{attempt:020d}.{seq:08d}`, so a
partition query sorted by key is the stream in order. `attempt` is the time (ns) the attempt began:
a turn the host retries after a crash starts a later attempt, and readers tell their client to
discard what the earlier one sent (a `reset` event). The last row of an attempt is `end`, with
the turn's status.

Why a crash is safe: the stored session state stays the truth. Chunks are provisional text; the
final event a client gets is always built from the state (the reply entry of its correlation id),
never from the stream. A host killed mid-turn leaves an attempt without `end`; the retried turn
writes a later attempt, so a reader either gets `reset` and the new attempt, or (after the turn)
the final state. Writing never fails a turn: the first failed write switches the turn's writer
off and is logged; a route whose stream stays empty still answers from the state.

Expiry: each row carries `expires` (`stream_ttl` after it was written); readers treat expired rows
as absent, and a writer starting a turn deletes expired rows at most every `ttl / 2` per process.

Latency: readers in the process that runs the turn (the usual case: the run route and the entity
share a host) are handed each event as it is made, before it is stored, and do not poll the table
meanwhile. The writer stores its first event at once and batches the ones that arrive while a
write is in flight (one entity-group transaction per batch, a single upsert for one row); the
stored copy serves resumes and readers on other instances. The turn does not wait for it.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
import weakref
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from agent_framework import AgentResponseUpdate

from . import clock
from ._tables import LoopTable

logger = logging.getLogger(__name__)

STREAM_FIELD = "stream"
"""Set (true) in a `run_agent` input by the run route when its client asked for Server-Sent Events:
the turn then appends its updates to its stream. Other callers' turns write nothing here."""
DEFAULT_TABLE = "dafxstreams"
DEFAULT_TTL = timedelta(hours=1)
BATCH_LIMIT = 100  # the most operations one table transaction takes


@dataclass(frozen=True)
class StreamId:
    """One turn's stream: the entity (`dafx-name`), the session key and the turn's correlation id."""

    entity_name: str
    key: str
    correlation_id: str

    @property
    def partition(self) -> str:
        text = f"{self.entity_name.lower()}\n{self.key}\n{self.correlation_id}"
        return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


@dataclass(frozen=True)
class StreamEvent:
    """One stored event: `kind` is `start`, `text`, `tool_call`, `tool_result` or `end`, or the
    run route's `queued` mark (`QUEUED_MARK`)."""

    attempt: int
    seq: int
    kind: str
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def row_key(self) -> str:
        return row_key(self.attempt, self.seq)

    @property
    def event_id(self) -> str:
        """The SSE id: resuming with it as `Last-Event-ID` continues right after this event."""
        return f"{self.attempt}.{self.seq}"


def row_key(attempt: int, seq: int) -> str:
    return f"{attempt:020d}.{seq:08d}"


QUEUED = "queued"
AFTER_ALL = row_key(10**20 - 1, 10**8 - 1)
"""A cursor after every row of any stream: resuming after the `final` event leaves only the reply."""


def queued_mark() -> StreamEvent:
    """The row the run route stores as it accepts a streamed turn, before any attempt of it.

    A turn queued behind another one of its session is in no state and has no rows until it
    starts, yet its client already holds its `streamUrl`: this row lets the resume route know the
    turn (instead of a 404) and wait for it. Attempt 0 sorts before every attempt, and readers
    skip it (it is no event of the turn)."""
    return StreamEvent(0, 0, QUEUED)


def parse_event_id(value: str) -> str:
    """The row key an SSE id stands for (the cursor to read after); ValueError when it is no such id."""
    attempt, sep, seq = value.strip().partition(".")
    if not sep or not attempt.isdigit() or not seq.isdigit() or len(attempt) > 20 or len(seq) > 8:
        raise ValueError(f"{value[:64]!r} is not an event id of this stream (expected ATTEMPT.SEQ)")
    return row_key(int(attempt), int(seq))


def update_events(update: AgentResponseUpdate) -> list[tuple[str, dict[str, Any]]]:
    """What a client sees of one model update: text deltas, tool calls as they start, tool results."""
    events: list[tuple[str, dict[str, Any]]] = []
    for content in update.contents or []:
        kind = getattr(content, "type", None)
        if kind == "text" and content.text:
            if events and events[-1][0] == "text":
                events[-1][1]["text"] += content.text
            else:
                events.append(("text", {"text": content.text}))
        elif kind == "function_call" and content.name:
            arguments = content.arguments
            if isinstance(arguments, str):
                try:
                    arguments = json.loads(arguments) if arguments else {}
                except ValueError:
                    pass  # a partial or non-JSON argument string is shown as it is
            events.append(
                ("tool_call", {"call_id": content.call_id, "name": content.name, "arguments": arguments})
            )
        elif kind == "function_result":
            result = content.result
            if not isinstance(result, str | int | float | bool | type(None) | list | dict):
                result = str(result)
            events.append(("tool_result", {"call_id": content.call_id, "result": result}))
    return events


class StreamStore(Protocol):
    """Where streams live; `TableStreamStore` on Azure Storage, `RedisStreamStore` optionally."""

    ttl: timedelta

    async def append(self, stream: StreamId, events: list[StreamEvent]) -> None: ...

    async def read(self, stream: StreamId, after: str | None) -> list[StreamEvent]: ...

    async def sweep(self) -> int: ...


# -- early wake for readers in this process --------------------------------------------------------
class _Waiter:
    """One reader waiting in this process: woken with the rows just stored."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.event = asyncio.Event()
        self.rows: list[StreamEvent] = []

    def deliver(self, rows: list[StreamEvent]) -> None:
        self.rows.extend(rows)
        self.event.set()


_waiters: dict[str, set[_Waiter]] = {}
_writing: dict[str, int] = {}  # partitions a turn in this process is writing, with how many writers
_waiters_lock = threading.Lock()


def written_here(stream: StreamId) -> bool:
    """Whether a turn in this process is writing `stream` now: its readers then get every event
    from `wake` and need not poll the table."""
    with _waiters_lock:
        return stream.partition in _writing


def wake(stream: StreamId, rows: list[StreamEvent]) -> None:
    """Hand `rows` to this process's readers of `stream` (any thread, any loop) as the turn makes
    them, before they are stored: a reader in the same process (the usual case: the run route
    and the turn share a host) sends a chunk without waiting for two table round trips. Readers
    elsewhere, and resumes, read the stored copy."""
    with _waiters_lock:
        waiting = list(_waiters.get(stream.partition, ()))
    for waiter in waiting:
        try:
            waiter.loop.call_soon_threadsafe(waiter.deliver, list(rows))
        except RuntimeError:
            pass  # that reader's loop is closed


class Subscription:
    """A reader's standing registration for `stream`'s rows made in this process (`wake`), kept
    for the reader's whole life so no row is missed while it is busy reading or sending.

    The run route makes it before it signals the turn: a turn may start (and even end) before
    the response's first event is sent, and a row handed over before anyone listens is in no
    reader's hands (its stored copy may come much later: the turn does not wait for it). A
    subscription whose reader never starts (its client left before the body was sent) is
    dropped when it is collected."""

    def __init__(self, stream: StreamId) -> None:
        self.stream = stream
        self._waiter = _Waiter()
        with _waiters_lock:
            _waiters.setdefault(stream.partition, set()).add(self._waiter)
        self._close = weakref.finalize(self, _unsubscribe, stream.partition, self._waiter)

    def take(self) -> list[StreamEvent]:
        """The rows handed over since the last call, without waiting."""
        waiter = self._waiter
        rows, waiter.rows = waiter.rows, []
        waiter.event.clear()
        return rows

    async def wait(self, timeout: float) -> None:
        """Wait up to `timeout` for rows to be handed over (none taken: see `take`)."""
        waiter = self._waiter
        if not waiter.rows:
            try:
                await asyncio.wait_for(waiter.event.wait(), timeout)
            except TimeoutError:
                pass

    def close(self) -> None:
        self._close()


def _unsubscribe(partition: str, waiter: _Waiter) -> None:
    with _waiters_lock:
        entries = _waiters.get(partition)
        if entries is not None:
            entries.discard(waiter)
            if not entries:
                del _waiters[partition]


# -- Azure Storage tables ------------------------------------------------------------------------
class TableStreamStore:
    """Streams as table rows (see the module docstring); one async client per event loop."""

    def __init__(
        self, connection_string: str, table: str = DEFAULT_TABLE, ttl: timedelta = DEFAULT_TTL
    ) -> None:
        self.connection_string = connection_string
        self.table = table
        self.ttl = ttl
        self._table = LoopTable(connection_string, table)

    async def _client(self) -> Any:
        return await self._table.client()

    async def append(self, stream: StreamId, events: list[StreamEvent]) -> None:
        client = await self._client()
        expires = clock.utc_now() + self.ttl
        rows = [
            {
                "PartitionKey": stream.partition,
                "RowKey": event.row_key,
                "kind": event.kind,
                "data": json.dumps(event.data),
                "expires": expires,
            }
            for event in events
        ]
        if len(rows) == 1:
            await client.upsert_entity(rows[0])  # about half the time of a one-row transaction
            return
        for start in range(0, len(rows), BATCH_LIMIT):
            await client.submit_transaction([("upsert", row) for row in rows[start : start + BATCH_LIMIT]])

    async def read(self, stream: StreamId, after: str | None) -> list[StreamEvent]:
        client = await self._client()
        query = "PartitionKey eq @pk and RowKey gt @after"
        now = clock.utc_now()
        events: list[StreamEvent] = []
        async for row in client.query_entities(
            query, parameters={"pk": stream.partition, "after": after or ""}
        ):
            expires = row.get("expires")
            if isinstance(expires, datetime) and expires < now:
                continue
            attempt, _, seq = str(row["RowKey"]).partition(".")
            try:
                data = json.loads(row.get("data") or "{}")
            except ValueError:
                data = {}
            events.append(StreamEvent(int(attempt), int(seq), str(row.get("kind")), data))
        events.sort(key=lambda e: e.row_key)
        return events

    async def sweep(self) -> int:
        """Delete expired rows; returns how many."""
        client = await self._client()
        now = clock.utc_now()
        removed = 0
        by_partition: dict[str, list[str]] = {}
        async for row in client.query_entities(
            "expires lt @now", parameters={"now": now}, select=["PartitionKey", "RowKey"]
        ):
            by_partition.setdefault(row["PartitionKey"], []).append(row["RowKey"])
        for partition, keys in by_partition.items():
            for start in range(0, len(keys), BATCH_LIMIT):
                chunk = keys[start : start + BATCH_LIMIT]
                await client.submit_transaction(
                    [("delete", {"PartitionKey": partition, "RowKey": key}) for key in chunk]
                )
                removed += len(chunk)
        return removed


# -- one turn's writer -----------------------------------------------------------------------------
_last_sweep: dict[int, float] = {}
_background: set[asyncio.Task[None]] = set()  # flushes that outlive their turn (kept from GC)


class TurnStreamWriter:
    """Appends one attempt of a turn; lives on the agent loop, never raises into the turn."""

    def __init__(self, store: StreamStore, stream: StreamId) -> None:
        self.store = store
        self.stream = stream
        self.attempt = time.time_ns()
        self._seq = 0
        self._pending: list[StreamEvent] = []
        self._flushing: asyncio.Task[None] | None = None
        self._broken = False
        with _waiters_lock:
            _writing[stream.partition] = _writing.get(stream.partition, 0) + 1
        self._add("start", {})
        self._maybe_sweep()

    def _add(self, kind: str, data: dict[str, Any]) -> None:
        event = StreamEvent(self.attempt, self._seq, kind, data)
        self._seq += 1
        wake(self.stream, [event])
        if self._broken:
            return
        self._pending.append(event)
        if self._flushing is None or self._flushing.done():
            self._flushing = asyncio.get_running_loop().create_task(self._flush())

    def add_update(self, update: AgentResponseUpdate) -> None:
        for kind, data in update_events(update):
            self._add(kind, data)

    async def _flush(self) -> None:
        while self._pending and not self._broken:
            batch, self._pending = self._pending, []
            try:
                await self.store.append(self.stream, batch)
            except Exception as exc:  # the state is the truth: a stream that cannot be written is dropped
                self._broken = True
                self._pending = []
                logger.warning(
                    "stream of %s/%s is off for this turn: %s",
                    self.stream.key,
                    self.stream.correlation_id,
                    exc,
                )
                return

    def finish(self, status: str) -> None:
        """Add the `end` row. The turn does not wait for the last writes: the state is the truth
        and is read for the final event, so a stream that is stored a moment later (or, if the
        process dies now, never) costs a reader nothing but chunks it may miss; the writes go
        on in the background on the agent loop."""
        self._add("end", {"status": status})
        with _waiters_lock:
            left = _writing.get(self.stream.partition, 1) - 1
            if left:
                _writing[self.stream.partition] = left
            else:
                _writing.pop(self.stream.partition, None)
        if self._flushing is not None and not self._flushing.done():
            _background.add(self._flushing)
            self._flushing.add_done_callback(_background.discard)

    def _maybe_sweep(self) -> None:
        """Delete expired streams now and then (at most every ttl / 2 per store and process)."""
        now = time.monotonic()
        interval = max(self.store.ttl.total_seconds() / 2, 1.0)
        last = _last_sweep.get(id(self.store))
        if last is not None and now - last < interval:
            return
        _last_sweep[id(self.store)] = now
        if last is None:
            return  # not on a process's first turn: let it start quickly

        async def sweep() -> None:
            try:
                removed = await self.store.sweep()
                if removed:
                    logger.info("deleted %d expired stream row(s)", removed)
            except Exception as exc:
                logger.warning("sweeping expired streams failed: %s", exc)

        asyncio.get_running_loop().create_task(sweep())
