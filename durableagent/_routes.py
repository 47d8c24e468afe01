"""HTTP handlers for the agent routes; the app wires them to Functions triggers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.functions as func

from ._backend import (
    MIN_SIGNAL_SECONDS,
    BackendUnavailable,
    DurableClient,
    both_spellings,
    is_backend_failure,
    read_state,
    reply_body,
    within,
)
from ._run_request import IDEMPOTENCY_HEADER, RequestError, check_correlation_id, parse_http_run
from ._sessions import (
    CONTINUATION_HEADER,
    Listed,
    ListingError,
    after_cursor,
    encode_cursor,
    entity_lister,
    idle_longer_than,
    list_sessions,
    parse_top,
)
from ._sse import EventStream, cursor_of, gone, left_session, mark_queued, turn_events
from ._storage import LazyStore
from .session import AgentSessionId, entity_name_for, validate_key
from .state import AgentState
from .streams import STREAM_FIELD, StreamId, Subscription, written_here

logger = logging.getLogger(__name__)
REMEMBERED_SESSIONS = 1024
FIRST_READ_BUDGET = 50  # at most this many reads' cost of waiting before the first read
RETRY_AFTER_SECONDS = 5
SESSION_HEADER = "x-ms-session-id"
"""On plain-text replies, which have no JSON body to carry the session id (Microsoft's header)."""
_IDEMPOTENT_SESSIONS = uuid.UUID("5d0c5c9e-6a55-4c43-8a0e-8f1f2f0f6d1a")


@dataclass(frozen=True)
class Polling:
    """How the run route waits for the entity's reply: short, growing intervals up to a deadline."""

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


def json_response(body: Mapping[str, Any], status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def error_response(error: str, status: int, **extra: Any) -> func.HttpResponse:
    return json_response({"status": "error", "error": error, **extra}, status)


def unavailable_response(error: object, **extra: Any) -> func.HttpResponse:
    """503 with `Retry-After`: the back end is down or slow, the caller may try again later."""
    body = {"status": "error", "error": f"durable backend unavailable: {error}", **extra}
    return func.HttpResponse(
        json.dumps(body),
        status_code=503,
        mimetype="application/json",
        headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
    )


def bug_response(exc: BaseException, what: str, **extra: Any) -> func.HttpResponse:
    """A programming error: logged with its traceback and answered as one, never as 'unavailable'
    (which would tell a caller to retry something that will fail the same way)."""
    logger.error("%s failed with an unexpected error", what, exc_info=exc)
    return error_response(f"internal error: {type(exc).__name__}: {exc}", 500, **extra)


def idempotent_session_key(agent: str, correlation_id: str) -> str:
    """The session a keyed request without a `sessionId` runs in: the same for every retry of it."""
    return uuid.uuid5(_IDEMPOTENT_SESSIONS, f"{agent.lower()}\n{correlation_id}").hex


class AgentRoutes:
    """Route logic; `lookup` maps a route's agent name to the registered agent's name."""

    def __init__(
        self,
        lookup: Callable[[str], str | None],
        agents_info: Callable[[], list[dict[str, Any]]],
        polling: Polling,
        session_ttl: timedelta | None = None,
        streams: LazyStore | None = None,
    ) -> None:
        self._lookup = lookup
        self._agents_info = agents_info
        self.polling = polling
        self.session_ttl = session_ttl
        self.streams = streams
        # Per session: how long its last turn took and what one read of its state cost. The next
        # turn of a long conversation takes about as long, so its first read waits for most of
        # that instead of polling, but never longer than FIRST_READ_BUDGET reads would cost: turn
        # times vary, and a cheap read is not worth delaying a quick reply for. (Reads that come
        # too early compete with the turn for the worker's CPU: at 1000 stored messages, 50 read
        # costs instead of 20 made turns about 10% quicker.)
        self._last_turn: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _agent(self, req: func.HttpRequest) -> str:
        requested = req.route_params.get("agent_name", "")
        name = self._lookup(requested)
        if name is None:
            known = ", ".join(a["name"] for a in self._agents_info() if a["http_endpoint_enabled"]) or "none"
            raise RequestError(f"unknown agent {requested!r}; agents with HTTP routes: {known}", 404)
        return name

    async def run(self, req: func.HttpRequest, client: DurableClient) -> func.HttpResponse | EventStream:
        """A turn; answered as Server-Sent Events (`_sse.py`) when `Accept` asks for them."""
        try:
            agent = self._agent(req)
            parsed = parse_http_run(req.get_body() or b"", req.headers, req.params)
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        request, correlation_id, session_key = parsed.request, parsed.correlation_id, parsed.session_key
        events, wait = parsed.events, parsed.wait
        if correlation_id is None:
            correlation_id = uuid.uuid4().hex
            key = session_key or uuid.uuid4().hex
        else:
            key = session_key or idempotent_session_key(agent, correlation_id)
        session = AgentSessionId(agent, key)
        ids = both_spellings(session.key, correlation_id)
        # One deadline for signalling and waiting: a hung back end must not hold the request past
        # the run timeout (the signal step gets at least MIN_SIGNAL_SECONDS).
        deadline = time.monotonic() + self.polling.timeout
        entity_input = request.entity_input(correlation_id)
        store = self.streams.get() if events and self.streams is not None else None
        stream = StreamId(entity_name_for(session.name), session.key, correlation_id)
        # Listening before the signal: the turn may run before the first event is sent (`Subscription`).
        subscription = Subscription(stream) if events else None
        if store is not None:
            entity_input[STREAM_FIELD] = True
        try:
            signalled = within(
                client.signal_entity(session.to_entity_id(), "run_agent", entity_input),
                deadline,
                MIN_SIGNAL_SECONDS,
            )
            if store is None:
                await signalled
            else:  # the stream's queued mark, stored while the signal is (it never raises)
                await asyncio.gather(signalled, mark_queued(store, stream, deadline))
        except Exception as exc:
            if subscription is not None:
                subscription.close()
            if not is_backend_failure(exc):
                return bug_response(exc, f"signalling {session}", **ids)
            error = str(exc) or f"no answer in time ({type(exc).__name__})"
            logger.error("durable backend unavailable for %s: %s", session, error)
            # The back end may have stored the signal before failing: only a keyed retry is safe.
            hint = f"the turn may still run; retry with the same {IDEMPOTENCY_HEADER} header to be safe"
            return unavailable_response(f"{error} ({hint})", **ids)
        status_url = req.url.split("?", 1)[0].rsplit("/", 1)[0] + f"/{session.key}"
        accepted = {
            "status": "accepted",
            "response": "Agent request accepted",
            "message": request.message,
            **ids,
            "statusUrl": status_url,
        }
        if events:
            accepted["streamUrl"] = f"{status_url}/stream/{correlation_id}"
            return EventStream(
                turn_events(
                    store,
                    client,
                    session,
                    correlation_id,
                    deadline,
                    lambda: dict(ids),
                    request.message,
                    first=accepted,
                    subscription=subscription,
                ),
                {"Cache-Control": "no-cache", SESSION_HEADER: session.key},
            )
        if not wait:
            return json_response(accepted, 202)
        # The signal is accepted: from here on the turn will run, so the answer is its reply, or
        # 202 with where to look for it, never "unavailable" (a retry would not be needed).
        try:
            entry, state = await self._wait_for_reply(client, session, correlation_id, deadline)
        except ValueError as exc:
            return error_response(f"stored state is unreadable: {exc}", 500, **ids)
        except Exception as exc:
            return bug_response(exc, f"waiting for the reply of {session}", **ids)
        if entry is None:
            return json_response(accepted, 202)
        body = reply_body(entry, state.message_count, request.message, ids)
        if body["status"] == "error":
            return json_response(body, 500)
        if parsed.plain_text:
            return func.HttpResponse(
                body["response"] or "",
                status_code=200,
                mimetype="text/plain",
                charset="utf-8",
                headers={SESSION_HEADER: session.key},
            )
        return json_response(body)

    async def _wait_for_reply(
        self, client: DurableClient, session: AgentSessionId, correlation_id: str, deadline: float
    ) -> tuple[dict[str, Any] | None, AgentState]:
        """Poll the session's state until it holds the reply for `correlation_id` or `deadline` passes.

        A read the back end fails ends the wait at once with no reply (the caller answers 202: the
        turn is accepted and runs whatever the reads do); one that does not answer ends at `deadline`."""
        started = time.monotonic()
        state = AgentState()
        # The signal was only just accepted: give the entity a moment before the first read.
        turn, read = self._last_turn.get(str(session), (0.0, 0.0))
        expected = min(0.8 * turn, FIRST_READ_BUDGET * read)
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
                entry = state.reply_for(correlation_id)
                if entry is not None:
                    self._remember_turn(str(session), time.monotonic() - started, read_cost)
                    return entry, state
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None, state
            # A large history makes each read expensive: never spend more than a third of the
            # wait reading, so polling does not slow down the turn it waits for.
            await asyncio.sleep(min(max(next(intervals), 2 * read_cost), remaining))

    def _remember_turn(self, session: str, seconds: float, read_cost: float) -> None:
        self._last_turn[session] = (seconds, read_cost)
        self._last_turn.move_to_end(session)
        while len(self._last_turn) > REMEMBERED_SESSIONS:
            self._last_turn.popitem(last=False)

    async def state(self, req: func.HttpRequest, client: DurableClient) -> func.HttpResponse:
        try:
            session = self._session(req)
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        agent, key = session.name, session.key
        try:
            data = await within(read_state(client, session), time.monotonic() + self.polling.timeout)
            if data is None:
                return error_response(f"session {key!r} of agent {agent!r} not found", 404)
            state = AgentState.from_dict(data).get_state()
        except (BackendUnavailable, TimeoutError) as exc:
            return unavailable_response(exc or "no answer in time")
        except ValueError as exc:
            return error_response(f"stored state is unreadable: {exc}", 500)
        except Exception as exc:
            return bug_response(exc, f"reading {session}")
        return json_response({**state, "sessionId": key, "agent": agent})

    async def stream(self, req: func.HttpRequest, client: DurableClient) -> func.HttpResponse | EventStream:
        """Resume (or replay) a turn's events after `Last-Event-ID` or `cursor`, then its final reply.

        404 when neither the session's state nor the stream knows the turn; a turn the state holds
        whose stream expired is answered with its final event alone."""
        try:
            session = self._session(req)
            correlation_id = check_correlation_id(
                req.route_params.get("correlation_id", ""), "correlation id"
            )
            after = cursor_of(req.headers.get("Last-Event-ID"), req.params.get("cursor"))
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        except ValueError as exc:
            return error_response(f"invalid Last-Event-ID or cursor: {exc}", 400)
        deadline = time.monotonic() + self.polling.timeout
        store = self.streams.get() if self.streams is not None else None
        stream_id = StreamId(entity_name_for(session.name), session.key, correlation_id)
        try:
            data = await within(read_state(client, session), deadline)
            state = AgentState.from_dict(data) if data is not None else AgentState()
            # A turn in flight is in no committed state yet: this process may be running it
            # (its rows can still be on their way to the store), or its rows are stored.
            known = state.has_correlation(correlation_id) or written_here(stream_id)
            if not known and store is not None:
                rows = await within(store.read(stream_id, None), deadline)
                known = bool(rows)
                ended = bool(rows) and rows[-1].kind == "end"
                if ended and await left_session(client, session, correlation_id, deadline):
                    return error_response(gone(session, correlation_id), 404)
        except (BackendUnavailable, TimeoutError) as exc:
            return unavailable_response(exc or "no answer in time")
        except ValueError as exc:
            return error_response(f"stored state is unreadable: {exc}", 500)
        except Exception as exc:
            if is_backend_failure(exc):
                return unavailable_response(exc)
            return bug_response(exc, f"reading the stream of {session}")
        if not known:
            return error_response(
                f"no turn {correlation_id!r} in session {session.key!r} of agent {session.name!r}", 404
            )
        ids = both_spellings(session.key, correlation_id)
        return EventStream(
            # The message is read with the reply: a turn still queued is in no state yet.
            turn_events(store, client, session, correlation_id, deadline, lambda: dict(ids), "", after),
            {"Cache-Control": "no-cache", SESSION_HEADER: session.key},
        )

    def _session(self, req: func.HttpRequest) -> AgentSessionId:
        agent = self._agent(req)
        key = req.route_params.get("session_id", "")
        try:
            validate_key(key)
        except ValueError as exc:
            raise RequestError(f"invalid session id: {exc}") from None
        return AgentSessionId(agent, key)

    async def sessions(self, req: func.HttpRequest, client: DurableClient) -> func.HttpResponse:
        """The agent's sessions, newest first: `top` per page, `continuationToken` for the next."""
        try:
            agent = self._agent(req)
            top = parse_top(req.params.get("top"))
            token = req.headers.get(CONTINUATION_HEADER) or req.params.get("continuationToken")
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        deadline = time.monotonic() + self.polling.timeout
        try:
            listed = await within(list_sessions(entity_lister(client), entity_name_for(agent)), deadline)
            if self.session_ttl is not None:
                listed = await within(self._expire_idle(client, agent, listed), deadline)
            if token:
                listed = after_cursor(listed, token)
            page = listed[:top]
            states = await within(
                asyncio.gather(*(read_state(client, AgentSessionId(agent, item.key)) for item in page)),
                deadline,
            )
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        except Exception as exc:
            if is_backend_failure(exc) or isinstance(exc, ListingError):
                return unavailable_response(str(exc) or "no answer in time")
            return bug_response(exc, f"listing the sessions of {agent}")
        sessions = []
        for item, data in zip(page, states, strict=True):
            if data is None:  # deleted since it was listed
                continue
            try:
                count: int | None = AgentState.from_dict(data).message_count
            except ValueError:
                count = None  # unreadable: listed, so it can still be seen and deleted
            sessions.append(
                {
                    "sessionId": item.key,
                    "session_id": item.key,
                    "message_count": count,
                    "last_activity": item.last_activity,
                }
            )
        more = encode_cursor(page[-1]) if len(listed) > top else None
        body = {"agent": agent, "sessions": sessions, "continuationToken": more}
        response = json_response(body)
        if more:
            response.headers[CONTINUATION_HEADER] = more
        return response

    async def _expire_idle(self, client: DurableClient, agent: str, listed: list[Listed]) -> list[Listed]:
        """Signal `expire` to the sessions idle past the TTL; returns the others.

        The listing's `lastOperationTime` only picks candidates: each entity decides from its own
        last turn, between turns, so a session used meanwhile is kept."""
        assert self.session_ttl is not None
        seconds = self.session_ttl.total_seconds()
        now = datetime.now(UTC)
        idle = [item for item in listed if idle_longer_than(item, seconds, now)]
        await asyncio.gather(
            *(
                client.signal_entity(
                    AgentSessionId(agent, item.key).to_entity_id(), "expire", {"idle_seconds": seconds}
                )
                for item in idle
            )
        )
        if idle:
            logger.info("expiring %d idle session(s) of %s", len(idle), agent)
        gone = {item.key for item in idle}
        return [item for item in listed if item.key not in gone]

    async def sweep(self, client: DurableClient, agents: list[str]) -> int:
        """Expire idle sessions of `agents` (the timer trigger's work); returns how many were signalled."""
        signalled = 0
        for agent in agents:
            listed = await list_sessions(entity_lister(client), entity_name_for(agent))
            signalled += len(listed) - len(await self._expire_idle(client, agent, listed))
        return signalled

    async def delete(self, req: func.HttpRequest, client: DurableClient) -> func.HttpResponse:
        """Remove a session's state through its entity's `delete` operation.

        The operation is queued behind any turn in flight, so a turn is never cut in half; the route
        then waits (up to the run timeout) until the state is gone and answers 204, or 202 when the
        delete is accepted but not done yet."""
        try:
            session = self._session(req)
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        deadline = time.monotonic() + self.polling.timeout
        try:
            if await within(read_state(client, session), deadline) is None:
                return error_response(f"session {session.key!r} of agent {session.name!r} not found", 404)
            await within(client.signal_entity(session.to_entity_id(), "delete"), deadline, MIN_SIGNAL_SECONDS)
        except Exception as exc:
            if is_backend_failure(exc):
                return unavailable_response(str(exc) or "no answer in time", sessionId=session.key)
            return bug_response(exc, f"deleting {session}")
        intervals = self.polling.intervals()
        while time.monotonic() < deadline:
            await asyncio.sleep(min(next(intervals), max(deadline - time.monotonic(), 0.0)))
            try:
                if await within(read_state(client, session), deadline) is None:
                    return func.HttpResponse(status_code=204)
            except (BackendUnavailable, TimeoutError):
                break
            except ValueError:
                continue  # unreadable until the delete runs
        status_url = req.url.split("?", 1)[0]
        return json_response(
            {
                "status": "accepted",
                "sessionId": session.key,
                "session_id": session.key,
                "statusUrl": status_url,
            },
            202,
        )

    def health(self, req: func.HttpRequest) -> func.HttpResponse:
        agents = self._agents_info()
        return json_response({"status": "healthy", "agents": agents, "agent_count": len(agents)})
