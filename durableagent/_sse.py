"""Server-Sent Events for one turn: its stream's events as they are stored, then the final reply.

Events: `accepted` (the ids and where to resume), then per stored chunk `text` (`{"text"}`, a
delta), `tool_call` (`{"call_id", "name", "arguments"}`, as a call starts) and `tool_result`
(`{"call_id", "result"}`), each with `id: ATTEMPT.SEQ`; `reset` when the host retried the turn
after a crash (the client drops what it showed of this turn; the new attempt's events follow);
last `final`, whose data is exactly the JSON body the non-streaming run route answers (with its
`status`: success, error, or accepted when the turn outlasts the run timeout).

The final event is read from the session state, never from the stream, so what a client ends with
is what the session holds. A client that goes away only ends this generator: the turn runs in its
entity, apart from any request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

from ._backend import BackendUnavailable, DurableClient, read_state, reply_body, within
from .session import AgentSessionId, entity_name_for
from .state import AgentState
from .streams import (
    AFTER_ALL,
    QUEUED,
    StreamEvent,
    StreamId,
    StreamStore,
    Subscription,
    parse_event_id,
    queued_mark,
    written_here,
)

logger = logging.getLogger(__name__)

FIRST_WAIT = 0.002
MAX_WAIT = 0.25
LOCAL_GRACE = 0.05
"""How long a new turn's reader waits for rows handed over in this process before it also polls
the table (where a turn run by another instance writes them)."""
ENDED_GRACE = 2.0
"""Seconds a turn's stream may show its `end` while the state does not hold the turn: the entity
commits the state a moment after the turn ends; longer means the session was deleted or reset
since (a stream outlives its session until it expires). A reader whose state reads are slow (a
back end under load, which commits late too) waits `SLOW_READS` times its slowest read, if longer."""
SLOW_READS = 10
STATE_EVERY = 0.5
"""Seconds between state reads while the stream has not ended: the state is read anyway, so a
turn whose stream could not be written still ends the response."""


def sse(event: str, data: Any, event_id: str | None = None) -> str:
    """One event in the wire format (`data` as one line of JSON)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"


@dataclass
class EventStream:
    """What a streaming route returns: the app answers it as a streamed body, or, where the host
    cannot stream, as one body once the generator ends."""

    events: AsyncIterator[str]
    headers: dict[str, str] = field(default_factory=dict)

    async def collect(self) -> str:
        return "".join([chunk async for chunk in self.events])


def cursor_of(last_event_id: str | None, cursor: str | None) -> str | None:
    """The row key to read after, from `Last-Event-ID` (preferred) or the `cursor` query; ValueError
    names a bad one. After `final` (the last event) only the reply is left: it is sent again, and
    no chunk is (an EventSource reconnects by itself when the body ends, with that id)."""
    value = last_event_id if last_event_id not in (None, "") else cursor
    if value is None or value == "":
        return None
    if value.strip() == "final":
        return AFTER_ALL
    return parse_event_id(value)


async def turn_events(
    store: StreamStore | None,
    client: DurableClient,
    session: AgentSessionId,
    correlation_id: str,
    deadline: float,
    final_extra: Callable[[], dict[str, Any]],
    message: str,
    after: str | None = None,
    first: dict[str, Any] | None = None,
    subscription: Subscription | None = None,
) -> AsyncIterator[str]:
    """The turn's events after `after`, then `final` from the state (see the module docstring).

    `subscription`: the run route's, made before it signalled the turn (`Subscription`); this
    generator owns it from then on and closes it."""
    stream = StreamId(entity_name_for(session.name), session.key, correlation_id)
    if subscription is None:
        subscription = Subscription(stream)
    try:
        if first is not None:
            yield sse("accepted", first)
        async for chunk in _events(
            store,
            client,
            session,
            correlation_id,
            deadline,
            final_extra,
            message,
            after,
            stream,
            subscription,
            first is not None,
        ):
            yield chunk
    finally:
        subscription.close()


async def _events(
    store: StreamStore | None,
    client: DurableClient,
    session: AgentSessionId,
    correlation_id: str,
    deadline: float,
    final_extra: Callable[[], dict[str, Any]],
    message: str,
    after: str | None,
    stream: StreamId,
    subscription: Subscription,
    fresh: bool,
) -> AsyncIterator[str]:
    attempt = int(after.split(".", 1)[0]) if after else None
    cursor = after
    wait = FIRST_WAIT
    # A new turn is most often run by this process (the run route and the entity share a host): its
    # rows are handed over at once, so reading the table or the state right away would only
    # delay them. A resume reads both at once.
    next_table_read = time.monotonic() + (LOCAL_GRACE if fresh else 0.0)
    next_state_read = time.monotonic() + (STATE_EVERY if fresh else 0.0)
    caught_up = fresh  # a resume reads what is stored first, whoever is writing
    ended = False  # the current attempt's `end` row was read: its reply is due in the state
    ended_at: float | None = None
    slowest_read = 0.0  # seconds, of this reader's state reads (see ENDED_GRACE)
    # Rows a writer in this process handed over and not yet sent, by row key. They stay here until
    # they are sent: one that does not follow the last row sent (a gap the table fills) waits for
    # the read that fills it, and all of them count when the reply is found in the state.
    handed: dict[str, StreamEvent] = {}
    while True:
        _keep(handed, subscription.take(), cursor)
        events = _run_after(cursor, sorted(handed.values(), key=_key))
        now = time.monotonic()
        if (
            not events
            and store is not None
            and not ended
            and (not caught_up or (now >= next_table_read and (handed or not written_here(stream))))
        ):
            caught_up = True
            next_table_read = now + wait
            try:
                stored = await within(store.read(stream, cursor), deadline, 1.0)
            except Exception as exc:
                logger.warning(
                    "reading the stream of %s/%s failed; answering from the state: %s",
                    session,
                    correlation_id,
                    exc,
                )
                store = None
            else:
                _keep(handed, subscription.take(), cursor)
                events = _stored_then_handed(cursor, stored, handed)
        if events:
            if events[0].kind == QUEUED:  # the run route's mark, no event of the turn
                cursor = max(cursor or "", events[0].row_key)
                events = events[1:]
        if events:
            newest = max(e.attempt for e in events)
            if attempt is not None and newest != attempt:
                yield sse("reset", {"attempt": newest, "reason": "the turn was retried"})
                ended, ended_at = False, None
            attempt = newest
            for event in events:
                cursor = event.row_key
                if event.attempt != newest or event.kind == "start":
                    continue
                if event.kind == "end":
                    ended, ended_at = True, ended_at or time.monotonic()
                    continue
                yield sse(event.kind, event.data, event.event_id)
            _keep(handed, [], cursor)
            wait = FIRST_WAIT
        now = time.monotonic()
        if ended or store is None or now >= next_state_read:
            next_state_read = now + (wait if ended else STATE_EVERY)
            try:
                reply = await _reply(client, session, correlation_id, deadline)
            except _Unread:
                reply, unread = None, True
            else:
                unread = False
            slowest_read = max(slowest_read, time.monotonic() - now)
            if reply is not None:
                entry, count, asked = reply
                if not ended:
                    # The turn ended (and its state was stored) before its `end` row was read here,
                    # e.g. all of it while this state read was under way: what is still due comes
                    # from the rows handed over meanwhile and the stored ones.
                    async for chunk in _rest(store, stream, cursor, attempt, handed, subscription, deadline):
                        yield chunk
                yield sse("final", reply_body(entry, count, message or asked, final_extra()), "final")
                return
            grace = max(ENDED_GRACE, SLOW_READS * slowest_read)
            if not unread and ended_at is not None and time.monotonic() - ended_at > grace:
                body = {"status": "error", "error": gone(session, correlation_id), **final_extra()}
                yield sse("final", body, "final")
                return
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            yield sse(
                "final",
                {"status": "accepted", "response": "Agent request accepted", **final_extra()},
                "final",
            )
            return
        pause = wait
        if handed and not events and store is not None and not ended:
            # Handed rows wait for a gap the table has not filled yet: read it again when due.
            pause = max(next_table_read - time.monotonic(), 0.0)
        await subscription.wait(min(pause, remaining))
        wait = min(wait * 2, MAX_WAIT)


async def _rest(
    store: StreamStore | None,
    stream: StreamId,
    cursor: str | None,
    attempt: int | None,
    handed: dict[str, StreamEvent],
    subscription: Subscription,
    deadline: float,
) -> AsyncIterator[str]:
    """The events of a turn that ended before its `end` row was read, after `cursor`: the rows
    handed over in this process (the turn's own writer hands over every row before its state is
    stored, and does not wait for their stored copy) and the stored ones (a writer elsewhere).
    Only the newest attempt's, which the state's reply is of; `reset` first when that is not the
    attempt sent so far."""
    stored: list[StreamEvent] = []
    if store is not None:
        try:
            stored = await within(store.read(stream, cursor), deadline, 1.0)
        except Exception:
            stored = []
    _keep(handed, subscription.take(), cursor)
    rows = {e.row_key: e for e in stored if cursor is None or e.row_key > cursor}
    rows.update(handed)
    due = sorted((e for e in rows.values() if e.kind != QUEUED), key=_key)
    if not due:
        return
    newest = max(e.attempt for e in due)
    if attempt is not None and newest != attempt:
        yield sse("reset", {"attempt": newest, "reason": "the turn was retried"})
    for event in due:
        if event.attempt == newest and event.kind not in ("start", "end"):
            yield sse(event.kind, event.data, event.event_id)


def _key(event: StreamEvent) -> str:
    return event.row_key


def _keep(handed: dict[str, StreamEvent], rows: list[StreamEvent], cursor: str | None) -> None:
    """Add `rows` to the rows handed over, and forget those at or before `cursor` (sent already)."""
    for row in rows:
        handed[row.row_key] = row
    if cursor is not None:
        for key in [key for key in handed if key <= cursor]:
            del handed[key]


def _run_after(cursor: str | None, rows: list[StreamEvent]) -> list[StreamEvent]:
    """The first rows of `rows` (in order) that continue the stream from `cursor` with no gap, so
    they need not be read back from the table."""
    run: list[StreamEvent] = []
    last = cursor
    for row in rows:
        if not _follows(row, last):
            break
        run.append(row)
        last = row.row_key
    return run


def _stored_then_handed(
    cursor: str | None, stored: list[StreamEvent], handed: dict[str, StreamEvent]
) -> list[StreamEvent]:
    """What a table read makes sendable: every stored row after `cursor` (the writer stores a
    turn's rows in order, so they have no gap), then the handed-over rows that continue them."""
    stored = [e for e in stored if cursor is None or e.row_key > cursor]
    last = stored[-1].row_key if stored else cursor
    later = sorted((e for key, e in handed.items() if last is None or key > last), key=_key)
    return stored + _run_after(last, later)


def gone(session: AgentSessionId, correlation_id: str) -> str:
    return (
        f"turn {correlation_id!r} ended but session {session.key!r} of agent {session.name!r} no longer "
        "holds it: the session was deleted or reset since"
    )


async def left_session(
    client: DurableClient, session: AgentSessionId, correlation_id: str, deadline: float
) -> bool:
    """Whether a turn whose stream ended stays out of the session's state for `ENDED_GRACE` (see
    there): its session was deleted or reset, and the stream must not be served as the session's."""
    until = min(time.monotonic() + ENDED_GRACE, deadline)
    interval = FIRST_WAIT
    while True:
        data = await within(read_state(client, session), deadline)
        if data is not None and AgentState.from_dict(data).has_correlation(correlation_id):
            return False
        if time.monotonic() >= until:
            return True
        await asyncio.sleep(interval)
        interval = min(interval * 2, MAX_WAIT)


async def mark_queued(store: StreamStore, stream: StreamId, deadline: float) -> None:
    """Store the turn's `queued` mark (`streams.queued_mark`); a store that fails costs only that.
    The run route writes it while it signals the turn, before the `accepted` event."""
    try:
        await within(store.append(stream, [queued_mark()]), deadline, 1.0)
    except Exception as exc:
        logger.warning("marking the stream of %s/%s failed: %s", stream.key, stream.correlation_id, exc)


def _follows(row: StreamEvent, cursor: str | None) -> bool:
    """Whether `row` continues the stream right after `cursor` with no gap: the next sequence
    number of the same attempt, or the start of a new attempt (the first row of a stream, the
    run route's queued mark included, has sequence number 0)."""
    if cursor is None:
        return row.seq == 0
    attempt, seq = (int(part) for part in cursor.split("."))
    same = row.attempt == attempt and row.seq == seq + 1
    return same or (row.attempt > attempt and row.seq == 0)


class _Unread(Exception):
    """The session's state could not be read this time."""


async def _reply(
    client: DurableClient, session: AgentSessionId, correlation_id: str, deadline: float
) -> tuple[dict[str, Any], int, str] | None:
    """(reply entry, message count, the turn's message) once the state holds the turn's reply; None
    before; `_Unread` while the back end does not answer (the turn is accepted, so the wait goes
    on to the deadline, and a state not read is no sign of a session gone)."""
    try:
        data = await within(read_state(client, session), deadline, 0.5)
        state = AgentState.from_dict(data) if data is not None else None
    except (BackendUnavailable, TimeoutError) as exc:
        logger.warning("reading %s failed while streaming: %s", session, exc or "timed out")
        raise _Unread from exc
    except ValueError as exc:
        return {"status": "error", "error": f"stored state is unreadable: {exc}"}, 0, ""
    if state is None:
        return None
    entry = state.reply_for(correlation_id)
    return None if entry is None else (entry, state.message_count, state.request_message(correlation_id))
