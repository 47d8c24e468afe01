"""HTTP handlers for the agent routes; the app wires them to Functions triggers."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

import azure.functions as func
from azure.core.exceptions import AzureError

from . import clock
from ._backend import (
    MIN_SIGNAL_SECONDS,
    BackendUnavailable,
    DurableClient,
    both_spellings,
    internal_error,
    is_backend_failure,
    read_state,
    within,
)
from ._run_request import RequestError, check_correlation_id, parse_http_run
from ._session_index import TableSessionIndex
from ._sessions import (
    CONTINUATION_HEADER,
    Entry,
    Listed,
    ListingError,
    after_cursor,
    encode_cursor,
    entity_lister,
    idle_longer_than,
    indexed_page,
    list_sessions,
    parse_top,
)
from ._sse import EventStream, cursor_of, gone, left_session, turn_events
from ._storage import LazyIndex, LazyStore
from .session import AgentSessionId, entity_name_for, validate_key
from .state import AgentState
from .streams import StreamId, written_here
from .turns import Polling, Turn, TurnOutcome, Turns

logger = logging.getLogger(__name__)
RETRY_AFTER_SECONDS = 5
SESSION_HEADER = "x-ms-session-id"
"""On plain-text replies, which have no JSON body to carry the session id (Microsoft's header)."""


def json_response(body: Mapping[str, Any], status: int = 200) -> func.HttpResponse:
    return func.HttpResponse(json.dumps(body), status_code=status, mimetype="application/json")


def error_response(error: str, status: int, **extra: Any) -> func.HttpResponse:
    return json_response({"status": "error", "error": error, **extra}, status)


def unavailable_response(error: object, **extra: Any) -> func.HttpResponse:
    """503 with `Retry-After`: the back end is down or slow, the caller may try again later."""
    return _retry_later(error_response(f"durable backend unavailable: {error}", 503, **extra))


def _retry_later(response: func.HttpResponse) -> func.HttpResponse:
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def bug_response(exc: BaseException, what: str, **extra: Any) -> func.HttpResponse:
    """A programming error: logged with its traceback and answered as one, never as 'unavailable'
    (which would tell a caller to retry something that will fail the same way)."""
    return error_response(internal_error(exc, what), 500, **extra)


_TURN_STATUS = {"success": 200, "error": 500, "accepted": 202, "unavailable": 503, "internal": 500}


def render_turn(outcome: TurnOutcome, status_url: str, plain_text: bool) -> func.HttpResponse:
    """The run route's answer for a turn's outcome (`turns.py` says what each status means):
    `accepted` says where to look for the reply, `unavailable` when to retry, and a successful
    reply to a plain-text request is plain text (the session id in a header)."""
    if outcome.status == "success" and plain_text:
        return func.HttpResponse(
            outcome.reply or "",
            status_code=200,
            mimetype="text/plain",
            charset="utf-8",
            headers={SESSION_HEADER: outcome.turn.session.key},
        )
    body = {**outcome.body, "statusUrl": status_url} if outcome.status == "accepted" else outcome.body
    response = json_response(body, _TURN_STATUS[outcome.status])
    return _retry_later(response) if outcome.status == "unavailable" else response


class AgentRoutes:
    """Route logic; `lookup` maps a route's agent name to the registered agent's name."""

    def __init__(
        self,
        lookup: Callable[[str], str | None],
        agents_info: Callable[[], list[dict[str, Any]]],
        polling: Polling,
        session_ttl: timedelta | None = None,
        streams: LazyStore | None = None,
        index: LazyIndex | None = None,
    ) -> None:
        self._lookup = lookup
        self.index = index
        self._agents_info = agents_info
        self.polling = polling
        self.session_ttl = session_ttl
        self.streams = streams
        self.turns = Turns(polling, streams)

    def _agent(self, req: func.HttpRequest) -> str:
        requested = req.route_params.get("agent_name", "")
        name = self._lookup(requested)
        if name is None:
            known = ", ".join(a["name"] for a in self._agents_info() if a["http_endpoint_enabled"]) or "none"
            raise RequestError(f"unknown agent {requested!r}; agents with HTTP routes: {known}", 404)
        return name

    async def run(self, req: func.HttpRequest, client: DurableClient) -> func.HttpResponse | EventStream:
        """A turn: parse (`_run_request.py`), run (`turns.py`), render; answered as Server-Sent
        Events (`_sse.py`) when `Accept` asks for them."""
        try:
            agent = self._agent(req)
            parsed = parse_http_run(req.get_body() or b"", req.headers, req.params)
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        turn = Turn.new(agent, parsed.request, parsed.session_key, parsed.correlation_id)
        status_url = req.url.split("?", 1)[0].rsplit("/", 1)[0] + f"/{turn.session.key}"
        if not parsed.events:
            outcome = await self.turns.run(client, turn, wait=parsed.wait)
            return render_turn(outcome, status_url, parsed.plain_text)
        signalled = await self.turns.signal(client, turn, events=True)
        if isinstance(signalled, TurnOutcome):
            return render_turn(signalled, status_url, parsed.plain_text)
        first = {
            **self.turns.accepted(turn).body,
            "statusUrl": status_url,
            "streamUrl": f"{status_url}/stream/{turn.correlation_id}",
        }
        return EventStream(
            self.turns.events(client, signalled, first),
            {"Cache-Control": "no-cache", SESSION_HEADER: turn.session.key},
        )

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
        index = self.index.get() if self.index is not None else None
        try:
            if index is not None:
                try:
                    entries, more = await within(self._indexed(index, client, agent, top, token), deadline)
                except AzureError as exc:  # the index cannot be read: every session from the Durable API
                    logger.warning("the session index cannot be read, listing every session: %s", exc)
                    index = None
            if index is None:
                entries, more = await within(self._listed(client, agent, top, token), deadline)
        except RequestError as exc:
            return error_response(str(exc), exc.status)
        except Exception as exc:
            if is_backend_failure(exc) or isinstance(exc, ListingError):
                return unavailable_response(str(exc) or "no answer in time")
            return bug_response(exc, f"listing the sessions of {agent}")
        sessions = []
        for key, last_activity, data in entries:
            if data is None:  # deleted since it was listed
                continue
            try:
                count: int | None = AgentState.from_dict(data).message_count
            except ValueError:
                count = None  # unreadable: listed, so it can still be seen and deleted
            sessions.append(
                {"sessionId": key, "session_id": key, "message_count": count, "last_activity": last_activity}
            )
        body = {"agent": agent, "sessions": sessions, "continuationToken": more}
        response = json_response(body)
        if more:
            response.headers[CONTINUATION_HEADER] = more
        return response

    async def _indexed(
        self, index: TableSessionIndex, client: DurableClient, agent: str, top: int, token: str | None
    ) -> tuple[list[Entry], str | None]:
        idle = self.session_ttl.total_seconds() if self.session_ttl is not None else None
        return await indexed_page(index, client, agent, top, token, idle)

    async def _listed(
        self, client: DurableClient, agent: str, top: int, token: str | None
    ) -> tuple[list[Entry], str | None]:
        """A page from the whole entity listing, sorted here (no session index)."""
        listed = await list_sessions(entity_lister(client), entity_name_for(agent))
        if self.session_ttl is not None:
            listed = await self._expire_idle(client, agent, listed)
        if token:
            listed = after_cursor(listed, token)
        page = listed[:top]
        states = await asyncio.gather(*(read_state(client, AgentSessionId(agent, item.key)) for item in page))
        more = encode_cursor(page[-1]) if len(listed) > top else None
        return [(item.key, item.last_activity, data) for item, data in zip(page, states, strict=True)], more

    async def _expire_idle(self, client: DurableClient, agent: str, listed: list[Listed]) -> list[Listed]:
        """Signal `expire` to the sessions idle past the TTL; returns the others.

        The listing's `lastOperationTime` only picks candidates: each entity decides from its own
        last turn, between turns, so a session used meanwhile is kept."""
        assert self.session_ttl is not None
        seconds = self.session_ttl.total_seconds()
        now = clock.utc_now()
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
