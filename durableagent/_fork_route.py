"""`POST /api/agents/{name}/{sessionId}/fork`: copy a session's first N turns into a new session.

The copy itself is the source entity's `fork` operation, which signals the target's `seed`
(`durableagent/fork.py`): it runs between the source's turns, so it copies one point of its history,
and the target takes it only while it has no turns. This route checks what it can up front (the
source exists and has N turns, the target has none) for a clear 4xx, signals `fork`, and waits (up to
the run timeout) until the target holds the copy (201), the target turns out to have turns of its own
(409), the source recorded why the fork failed (400) or was deleted before the fork ran (404);
otherwise 202 with where to look.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass

import azure.functions as func

from ._backend import (
    MIN_SIGNAL_SECONDS,
    BackendUnavailable,
    DurableClient,
    is_backend_failure,
    read_state,
    within,
)
from ._routes import AgentRoutes, bug_response, error_response, json_response, unavailable_response
from ._run_request import (
    MAX_JSON_DEPTH,
    RequestError,
    decode_body,
    json_depth,
    one_session_key,
    parse_json_text,
    reject_unknown_fields,
)
from .session import AgentSessionId
from .state import AgentState

TARGET_FIELDS = ("session_id", "sessionId")
SOURCE_GONE_GRACE = 3.0
"""Seconds the route still watches the target after the source turned out deleted: a fork that ran
before the delete sent its seed with its own commit, so the seed is on its way; one that ran after
found no session and can never happen (a deleted source records no failure: it stays deleted)."""
_KNOWN_FIELDS = {"turn", *TARGET_FIELDS}


@dataclass(frozen=True)
class ForkRequest:
    turn: int
    target: str | None


def parse_fork_request(body: bytes) -> ForkRequest:
    """`{"turn": N, "session_id": optional new id}`; every problem is a RequestError naming it."""
    data = parse_json_text(decode_body(body), '{"turn": 2}')
    if json_depth(data) > MAX_JSON_DEPTH:
        raise RequestError(f"request body nests deeper than {MAX_JSON_DEPTH} levels")
    if not isinstance(data, dict):
        raise RequestError(f"request body must be a JSON object, got {type(data).__name__}")
    reject_unknown_fields(data, _KNOWN_FIELDS)
    turn = data.get("turn")
    if turn is None:
        raise RequestError("'turn' is required: how many turns of the session to copy")
    if type(turn) is not int or turn < 1:
        raise RequestError(f"'turn' must be a whole number from 1, got {turn!r}")
    target = one_session_key([(f"'{field}'", data.get(field)) for field in TARGET_FIELDS])
    return ForkRequest(turn, target)


def _conflict(target: str, state: AgentState) -> func.HttpResponse:
    return error_response(
        f"session {target!r} already exists with {state.turn_count} turn(s); a fork never overwrites "
        "a session: choose another id or leave it out",
        409,
        sessionId=target,
        session_id=target,
    )


async def fork(routes: AgentRoutes, req: func.HttpRequest, client: DurableClient) -> func.HttpResponse:
    """The route: checks up front for clear 4xx answers, then the entities decide (they may race it)."""
    try:
        source = routes._session(req)
        request = parse_fork_request(req.get_body() or b"")
    except RequestError as exc:
        return error_response(str(exc), exc.status)
    target = AgentSessionId(source.name, request.target or uuid.uuid4().hex)
    if target.key == source.key:
        return error_response("a session cannot be forked into itself; choose another 'session_id'", 400)
    ids = {"sessionId": target.key, "session_id": target.key, "source": source.key, "turn": request.turn}
    status_url = req.url.split("?", 1)[0].rsplit("/", 2)[0] + f"/{target.key}"
    deadline = time.monotonic() + routes.polling.timeout
    fork_id = uuid.uuid4().hex
    try:
        data = await within(read_state(client, source), deadline)
        if data is None:
            return error_response(f"session {source.key!r} of agent {source.name!r} not found", 404)
        turns = AgentState.from_dict(data).turn_count
        if request.turn > turns:
            return error_response(
                f"turn {request.turn} is out of range: session {source.key!r} has {turns} turn(s)", 400
            )
        existing = await within(read_state(client, target), deadline)
        occupied = AgentState.from_dict(existing) if existing is not None else None
        if occupied is not None and occupied.message_count:
            return _conflict(target.key, occupied)
        operation = {"turn": request.turn, "target": target.key, "fork_id": fork_id}
        await within(
            client.signal_entity(source.to_entity_id(), "fork", operation), deadline, MIN_SIGNAL_SECONDS
        )
    except (BackendUnavailable, TimeoutError) as exc:
        return unavailable_response(exc or "no answer in time", **ids)
    except ValueError as exc:
        return error_response(f"stored state is unreadable: {exc}", 500, **ids)
    except Exception as exc:
        if is_backend_failure(exc):
            return unavailable_response(str(exc) or type(exc).__name__, **ids)
        return bug_response(exc, f"forking {source}", **ids)
    try:
        outcome = await _wait_for_fork(routes, client, source, target, fork_id, deadline)
    except ValueError as exc:
        return error_response(f"stored state is unreadable: {exc}", 500, **ids)
    except Exception as exc:
        return bug_response(exc, f"waiting for the fork of {source}", **ids)
    if isinstance(outcome, func.HttpResponse):
        return outcome
    if outcome is None:
        return json_response({"status": "accepted", **ids, "statusUrl": status_url}, 202)
    response = json_response(
        {"status": "forked", **ids, "message_count": outcome.message_count, "statusUrl": status_url}, 201
    )
    response.headers["Location"] = status_url
    return response


async def _wait_for_fork(
    routes: AgentRoutes,
    client: DurableClient,
    source: AgentSessionId,
    target: AgentSessionId,
    fork_id: str,
    deadline: float,
) -> AgentState | func.HttpResponse | None:
    """The target's state once it holds this fork, a 4xx response when the fork cannot happen, or
    None at the deadline (or when the back end stops answering: the fork may still happen)."""
    intervals = routes.polling.intervals()
    gone_since: float | None = None  # when the source was first seen deleted
    while True:
        try:
            data = await within(read_state(client, target), deadline)
            if data is not None:
                state = AgentState.from_dict(data)
                if (state.forked_from or {}).get("fork_id") == fork_id:
                    return state
                if state.message_count:  # turns of its own arrived first: the seed refuses them
                    return _conflict(target.key, state)
            data = await within(read_state(client, source), deadline)
            if data is None:
                gone_since = gone_since or time.monotonic()
                if time.monotonic() - gone_since >= SOURCE_GONE_GRACE:
                    return error_response(
                        f"session {source.key!r} of agent {source.name!r} was deleted before the fork "
                        f"could copy it; nothing was copied to {target.key!r}",
                        404,
                        sessionId=target.key,
                        session_id=target.key,
                    )
            failure = AgentState.from_dict(data).fork_failure(fork_id) if data is not None else None
            if failure is not None:
                return error_response(f"the fork failed: {failure}", 400, sessionId=target.key)
        except (BackendUnavailable, TimeoutError):
            return None
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        await asyncio.sleep(min(next(intervals), remaining))
