"""One turn of an agent session, from outside an orchestration: signal the session's entity with the
turn's correlation id, then wait (up to a deadline) for the reply the entity stores under that id.

Why one module: every caller that runs a turn from ordinary async code (the HTTP run route today, an
MCP tool call next: a tool call is "run one turn and return its reply") needs the same steps and
the same answers, and only how they are rendered differs. So this module decides, and its callers
render its `TurnOutcome`:

- `success` / `error`: the turn finished; `body` is the run route's JSON for it.
- `accepted`: the turn is signalled (it will run) but its reply was not asked for or not there in
  time; the caller says where to look, never "retry" (a retry is not needed).
- `unavailable`: the signal failed because the back end did; the turn may still run, so only a
  retry with the same correlation id is safe (the entity runs a correlation id once).
- `internal`: a bug here (logged with its traceback); not worth retrying.

Orchestrations cannot await (their code is replayed), so they share the operation and its input
(`RUN_OPERATION`, `turn_input`) rather than the waiting (`orchestration.py`).

Streaming: `signal(..., events=True)` subscribes to the turn's stream *before* it signals (the turn
may run, and hand over its first events, before the signal call returns; `streams.Subscription`),
and `events` then yields the turn's Server-Sent Events (`_sse.py`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

from ._backend import (
    MIN_SIGNAL_SECONDS,
    BackendUnavailable,
    DurableClient,
    both_spellings,
    internal_error,
    is_backend_failure,
    parse_state,
    read_state,
    reply_body,
    within,
)
from ._commits import COMMITS, Watch
from ._run_request import IDEMPOTENCY_HEADER, RunRequest
from ._sse import mark_queued, turn_events
from ._storage import LazyStore
from .session import AgentSessionId, entity_name_for
from .state import AgentState
from .streams import STREAM_FIELD, StreamId, StreamStore, Subscription

logger = logging.getLogger(__name__)

RUN_OPERATION = "run_agent"
"""The entity operation that runs one turn (HTTP route, orchestrations, tools alike)."""
ACCEPTED_TEXT = "Agent request accepted"
REMEMBERED_SESSIONS = 1024
FIRST_READ_BUDGET = 50  # at most this many reads' cost of waiting before the first read
FALLBACK_SECONDS = 0.05
"""Woken by commits (`_commits.py`), a wait still reads the state after this long without one, or
after FALLBACK_TURNS times as long as the session's last turn (any session's, for its first) took."""
FALLBACK_TURNS = 2.0
_IDEMPOTENT_SESSIONS = uuid.UUID("5d0c5c9e-6a55-4c43-8a0e-8f1f2f0f6d1a")

_V = TypeVar("_V")

Status = Literal["success", "error", "accepted", "unavailable", "internal"]


@dataclass(frozen=True)
class Polling:
    """How a turn's caller waits for the entity's reply: short, growing intervals up to a deadline."""

    timeout: float = 60.0
    first_interval: float = 0.004
    max_interval: float = 0.5
    growth: float = 1.3
    due_interval: float = 0.001
    """Where intervals start after a first read timed by the session's last turn: the reply is
    due then, and each interval of lag adds to the turn."""

    def intervals(self, first: float | None = None) -> Iterator[float]:
        interval = self.first_interval if first is None else first
        while True:
            yield interval
            interval = min(interval * self.growth, self.max_interval)


def turn_input(request: RunRequest, correlation_id: str) -> dict[str, Any]:
    """The `run_agent` operation's input for `request` under `correlation_id`."""
    return request.entity_input(correlation_id)


def idempotent_session_key(agent: str, correlation_id: str) -> str:
    """The session a keyed request without a `sessionId` runs in: the same for every retry of it."""
    return uuid.uuid5(_IDEMPOTENT_SESSIONS, f"{agent.lower()}\n{correlation_id}").hex


@dataclass(frozen=True)
class Turn:
    """One turn to run: which session, under which correlation id, with which request."""

    session: AgentSessionId
    correlation_id: str
    request: RunRequest

    @classmethod
    def new(
        cls,
        agent: str,
        request: RunRequest,
        session_key: str | None = None,
        correlation_id: str | None = None,
    ) -> Turn:
        """A turn of `agent`. Without a correlation id it gets a fresh one (and, without a session
        key, a fresh session); with one but no session key, its session is derived from it, so
        every retry of a keyed turn lands in the same session and runs once."""
        if correlation_id is None:
            correlation_id = uuid.uuid4().hex
            key = session_key or uuid.uuid4().hex
        else:
            key = session_key or idempotent_session_key(agent, correlation_id)
        return cls(AgentSessionId(agent, key), correlation_id, request)

    @property
    def ids(self) -> dict[str, str]:
        return both_spellings(self.session.key, self.correlation_id)

    @property
    def stream(self) -> StreamId:
        return StreamId(entity_name_for(self.session.name), self.session.key, self.correlation_id)


@dataclass(frozen=True)
class TurnOutcome:
    """What a turn came to (see the module docstring); `body` is the run route's JSON for it."""

    turn: Turn
    status: Status
    body: dict[str, Any]

    @property
    def reply(self) -> str | None:
        """The reply text of a successful turn."""
        return self.body.get("response") if self.status == "success" else None


@dataclass
class Signalled:
    """A turn whose signal the back end accepted: it will run. Owns the stream subscription, if any."""

    turn: Turn
    deadline: float
    store: StreamStore | None = None
    subscription: Subscription | None = field(default=None, repr=False)
    watch: Watch | None = field(default=None, repr=False)
    """The session's commits, when a host in this process serves the client's back end (`_commits.py`)."""


class Turns:
    """Runs turns: `run` (signal, then wait for the reply) or `signal` then `wait` / `events`.

    Keeps, per session, how long its last turn took and what one read of its state cost: the next
    turn of a long conversation takes about as long, so its first read waits for most of that
    instead of polling, but never longer than FIRST_READ_BUDGET reads would cost (turn times vary,
    and a cheap read is not worth delaying a quick reply for; reads that come too early compete
    with the turn for the worker's CPU: at 1000 stored messages, 50 read costs instead of 20 made
    turns about 10% quicker)."""

    def __init__(self, polling: Polling, streams: LazyStore | None = None) -> None:
        self.polling = polling
        self.streams = streams
        self._last_turn: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._committed_in: OrderedDict[str, float] = OrderedDict()  # seconds a turn took, by session
        self._typical = 0.0  # of any session's turns lately (a moving average)

    async def run(self, client: DurableClient, turn: Turn, *, wait: bool = True) -> TurnOutcome:
        """Run one turn: its reply when it finishes within the polling timeout, else `accepted`."""
        signalled = await self.signal(client, turn, inline=wait)
        if isinstance(signalled, TurnOutcome):
            return signalled
        if not wait:
            if signalled.watch is not None:
                signalled.watch.close()
            return self.accepted(turn)
        return await self.wait(client, signalled)

    async def signal(
        self, client: DurableClient, turn: Turn, *, events: bool = False, inline: bool = False
    ) -> Signalled | TurnOutcome:
        """Signal the turn (one deadline for signalling and waiting: a hung back end must not hold
        the caller past the timeout; the signal gets at least MIN_SIGNAL_SECONDS). `events`:
        subscribe to its stream first, and have the turn write it when a store is configured.
        `inline`: the caller waits for the reply, so a host in this process that takes operations
        directly may run it at once (`_commits.py`: accepted as a signal is, one hop and one
        storage round trip sooner). Returns the `unavailable` or `internal` outcome when the signal
        fails."""
        deadline = time.monotonic() + self.polling.timeout
        entity_input = turn_input(turn.request, turn.correlation_id)
        store = self.streams.get() if events and self.streams is not None else None
        # Listening before the signal: the turn may run before the first event is sent (`Subscription`).
        subscription = Subscription(turn.stream) if events else None
        if store is not None:
            entity_input[STREAM_FIELD] = True
        # Watching before the signal too: the commit may come before the caller waits.
        backend = getattr(getattr(client, "_orchestration_bindings", None), "rpc_base_url", None)
        watch = None
        if not events and COMMITS.served(backend):
            watch = COMMITS.watch(backend, entity_name_for(turn.session.name), turn.session.key)
        runner = COMMITS.runner(backend) if inline and watch is not None else None
        try:
            if runner is not None and await within(
                runner(entity_name_for(turn.session.name), turn.session.key, RUN_OPERATION, entity_input),
                deadline,
                MIN_SIGNAL_SECONDS,
            ):
                return Signalled(turn, deadline, store, subscription, watch)
            signalled = within(
                client.signal_entity(turn.session.to_entity_id(), RUN_OPERATION, entity_input),
                deadline,
                MIN_SIGNAL_SECONDS,
            )
            if store is None:
                await signalled
            else:  # the stream's queued mark, stored while the signal is (it never raises)
                await asyncio.gather(signalled, mark_queued(store, turn.stream, deadline))
        except Exception as exc:
            if subscription is not None:
                subscription.close()
            if watch is not None:
                watch.close()
            if not is_backend_failure(exc):
                return _internal(turn, exc, f"signalling {turn.session}")
            error = str(exc) or f"no answer in time ({type(exc).__name__})"
            logger.error("durable backend unavailable for %s: %s", turn.session, error)
            # The back end may have stored the signal before failing: only a keyed retry is safe.
            hint = f"the turn may still run; retry with the same {IDEMPOTENCY_HEADER} header to be safe"
            body = {"status": "error", "error": f"durable backend unavailable: {error} ({hint})", **turn.ids}
            return TurnOutcome(turn, "unavailable", body)
        return Signalled(turn, deadline, store, subscription, watch)

    def accepted(self, turn: Turn) -> TurnOutcome:
        body = {"status": "accepted", "response": ACCEPTED_TEXT, "message": turn.request.message, **turn.ids}
        return TurnOutcome(turn, "accepted", body)

    async def wait(self, client: DurableClient, signalled: Signalled) -> TurnOutcome:
        """The turn's reply, or `accepted` at the deadline (or when the back end stops answering
        reads): the signal is accepted, so from here on the turn will run, and the answer is never
        "unavailable" (a retry would not be needed)."""
        turn = signalled.turn
        try:
            if signalled.watch is not None:
                entry, state = await self._wait_for_commit(client, turn, signalled.deadline, signalled.watch)
            else:
                entry, state = await self._wait_for_reply(client, turn, signalled.deadline)
        except ValueError as exc:
            body = {"status": "error", "error": f"stored state is unreadable: {exc}", **turn.ids}
            return TurnOutcome(turn, "internal", body)
        except Exception as exc:
            return _internal(turn, exc, f"waiting for the reply of {turn.session}")
        finally:
            if signalled.watch is not None:
                signalled.watch.close()
        if entry is None:
            return self.accepted(turn)
        count = state if isinstance(state, int) else state.message_count
        body = reply_body(entry, count, turn.request.message, turn.ids)
        return TurnOutcome(turn, "error" if body["status"] == "error" else "success", body)

    def events(
        self, client: DurableClient, signalled: Signalled, first: dict[str, Any]
    ) -> AsyncIterator[str]:
        """The turn's Server-Sent Events: `first` as `accepted`, its stream, then `final`."""
        turn = signalled.turn
        return turn_events(
            signalled.store,
            client,
            turn.session,
            turn.correlation_id,
            signalled.deadline,
            lambda: dict(turn.ids),
            turn.request.message,
            first=first,
            subscription=signalled.subscription,
        )

    async def _wait_for_reply(
        self, client: DurableClient, turn: Turn, deadline: float
    ) -> tuple[dict[str, Any] | None, AgentState]:
        """Poll the session's state until it holds the reply for the turn or `deadline` passes.

        A read the back end fails ends the wait at once with no reply (the caller answers 202: the
        turn is accepted and runs whatever the reads do); one that does not answer ends at `deadline`."""
        session = turn.session
        started = time.monotonic()
        state = AgentState()
        # The signal was only just accepted: give the entity a moment before the first read.
        last, read = self._last_turn.get(str(session), (0.0, 0.0))
        expected = min(0.8 * last, FIRST_READ_BUDGET * read)
        due = expected > self.polling.first_interval
        intervals = self.polling.intervals(self.polling.due_interval if due else None)
        await asyncio.sleep(
            min(max(self.polling.first_interval, expected), max(deadline - time.monotonic(), 0.0))
        )
        while True:
            began = time.monotonic()
            try:
                data = await within(read_state(client, session), deadline)
            except (BackendUnavailable, TimeoutError) as exc:
                logger.warning("reading %s failed; its turn is accepted: %s", session, exc or "timed out")
                return None, state
            read_cost = time.monotonic() - began
            if data is not None:
                state = AgentState.from_dict(data)
                entry = state.reply_for(turn.correlation_id)
                if entry is not None:
                    self._remember_turn(str(session), time.monotonic() - started, read_cost)
                    return entry, state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, state
            # A large history makes each read expensive: never spend more than a third of the
            # wait reading, so polling does not slow down the turn it waits for.
            await asyncio.sleep(min(max(next(intervals), 2 * read_cost), remaining))

    async def _wait_for_commit(
        self, client: DurableClient, turn: Turn, deadline: float, watch: Watch
    ) -> tuple[dict[str, Any] | None, AgentState | int]:
        """The reply from the state the host in this process commits (`_commits.py`): no reads while
        the turn runs. Between commits it still reads now and then (the polling intervals, from
        `FALLBACK_SECONDS` on), so a commit it is not told of is seen all the same. A commit of
        this turn alone carries its result, which gives the reply without decoding the state
        (whose cost grows with the history): then the message count comes with the entry."""
        session = turn.session
        state = AgentState()
        started = time.monotonic()
        intervals = self.polling.intervals(self._fallback_after(str(session)))
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, state
            committed = await watch.next(min(next(intervals), remaining))
            if committed is not None:
                exists, text, result = committed
                replied = _reply_from_result(result, turn.correlation_id) if exists else None
                if replied is not None:
                    self._remember_commit(str(session), time.monotonic() - started)
                    return replied
                data = parse_state(text, session) if exists and text is not None else None
            else:
                try:
                    data = await within(read_state(client, session), deadline)
                except (BackendUnavailable, TimeoutError) as exc:
                    logger.warning("reading %s failed; its turn is accepted: %s", session, exc or "timed out")
                    return None, state
            if data is not None:
                state = AgentState.from_dict(data)
                entry = state.reply_for(turn.correlation_id)
                if entry is not None:
                    return entry, state

    def _fallback_after(self, session: str) -> float:
        """When a wait woken by commits first reads the state itself: a read then only finds what
        the commits would have said (it is there for a commit this process is not told of), and a
        long history or a slow model makes each one costly, so none comes while the turn is likely
        still running."""
        last = self._committed_in.get(session, self._typical)
        return max(self.polling.first_interval, FALLBACK_SECONDS, FALLBACK_TURNS * last)

    def _remember_commit(self, session: str, seconds: float) -> None:
        self._typical = seconds if not self._typical else 0.8 * self._typical + 0.2 * seconds
        _remember(self._committed_in, session, seconds)

    def _remember_turn(self, session: str, seconds: float, read_cost: float) -> None:
        _remember(self._last_turn, session, (seconds, read_cost))


def _remember(table: OrderedDict[str, _V], session: str, value: _V) -> None:
    """Keep `value` for `session` as its newest, forgetting the least recent past REMEMBERED_SESSIONS."""
    table[session] = value
    table.move_to_end(session)
    while len(table) > REMEMBERED_SESSIONS:
        table.popitem(last=False)


def _reply_from_result(result: str | None, correlation_id: str) -> tuple[dict[str, Any], int] | None:
    """(the reply entry as `reply_body` reads it, the session's message count) from the result of a
    commit that applied this turn's `run_agent` alone (`entity.turn_result`); None when it is not
    that (another operation, a redelivered turn still pending, a reply whose text the result would
    not give exactly), and the caller reads the state as before."""
    if result is None:
        return None
    try:
        data = json.loads(result)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("correlation_id") != correlation_id:
        return None
    count = data.get("message_count")
    if data.get("status") == "success" and isinstance(data.get("response"), str) and data["response"]:
        if isinstance(count, int) and not isinstance(count, bool):
            return {"status": "success", "content": data["response"]}, count
    elif data.get("status") == "error" and isinstance(data.get("error"), str) and data["error"]:
        return {"status": "error", "error": data["error"]}, 0
    return None


def _internal(turn: Turn, exc: BaseException, what: str) -> TurnOutcome:
    """A programming error (logged with its traceback), never 'unavailable' (`internal_error`)."""
    return TurnOutcome(turn, "internal", {"status": "error", "error": internal_error(exc, what), **turn.ids})
