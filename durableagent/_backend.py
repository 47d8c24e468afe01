"""The durable back end as the routes and turns see it: the client, reading a session's state, and
telling a back end that failed (503, retry later) from a bug of ours (500).

Kept apart from the HTTP routes so that everything that talks to the back end (the routes, the
turn module, the event streams) builds on this one module instead of on each other.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Awaitable
from typing import Any, Protocol, TypeVar

import aiohttp
import azure.durable_functions as df

from .session import AgentSessionId

T = TypeVar("T")
logger = logging.getLogger(__name__)
MIN_SIGNAL_SECONDS = 1.0
"""A signal gets at least this long even when the run timeout is shorter: a request must not
be refused as unavailable only because its deadline was tiny."""
_STATUS_CODE = re.compile(r"unexpected status code (\d{3})")


class DurableClient(Protocol):
    """The part of `DurableOrchestrationClient` the routes use (a double in unit tests)."""

    async def signal_entity(
        self, entityId: df.EntityId, operation_name: str, operation_input: Any = None
    ) -> None: ...

    async def read_entity_state(self, entityId: df.EntityId) -> Any: ...


class BackendUnavailable(Exception):
    """The durable backend (storage, host) did not answer as expected."""


def is_backend_failure(exc: BaseException) -> bool:
    """Whether `exc` from the durable client means the back end failed rather than our code.

    The Python durable client raises a plain `Exception` naming the status code for any answer it
    does not expect, lets aiohttp's connection errors and timeouts through, and raises a JSON
    decoding error when the back end answers something other than JSON. Only 5xx answers count:
    a 4xx means we sent something the API refuses, which is a bug here.
    """
    if isinstance(
        exc, BackendUnavailable | TimeoutError | OSError | aiohttp.ClientError | json.JSONDecodeError
    ):
        return True
    match = _STATUS_CODE.search(str(exc))
    return match is not None and match.group(1).startswith("5")


def internal_error(exc: BaseException, what: str) -> str:
    """Log a programming error with its traceback; the error text to answer with. Never answered
    as 'unavailable', which would tell a caller to retry something that will fail the same way."""
    logger.error("%s failed with an unexpected error", what, exc_info=exc)
    return f"internal error: {type(exc).__name__}: {exc}"


async def within(awaitable: Awaitable[T], deadline: float, floor: float = 0.0) -> T:
    """Await with a bound: at most until `deadline` (but at least `floor` seconds)."""
    return await asyncio.wait_for(awaitable, max(deadline - time.monotonic(), floor))


class UnreadableState(ValueError):
    """Stored session state this version cannot read (corrupt, or from a newer version)."""


async def read_state(client: DurableClient, session: AgentSessionId) -> dict[str, Any] | None:
    """Stored state of a session, or None when the entity does not exist."""
    try:
        response = await client.read_entity_state(session.to_entity_id())
    except Exception as exc:
        if is_backend_failure(exc):
            raise BackendUnavailable(str(exc) or type(exc).__name__) from exc
        raise
    if not response.entity_exists:
        return None
    return parse_state(response.entity_state, session)


def parse_state(state: Any, session: AgentSessionId) -> dict[str, Any] | None:
    """A session's stored state as read (JSON text or already decoded) -> the state object, or None."""
    if isinstance(state, str):
        try:
            state = json.loads(state)
        except ValueError:
            raise UnreadableState(f"stored state of {session} is not JSON") from None
    # An entity that exists without a state object (e.g. only ever asked `get_state`) has no session.
    return state if isinstance(state, dict) else None


def both_spellings(session_key: str, correlation_id: str) -> dict[str, str]:
    """The ids as our clients read them (`sessionId`) and as Microsoft's do (`session_id`)."""
    return {
        "sessionId": session_key,
        "session_id": session_key,
        "correlationId": correlation_id,
        "correlation_id": correlation_id,
    }


def reply_body(
    entry: dict[str, Any], message_count: int, message: str, ids: dict[str, Any]
) -> dict[str, Any]:
    """The run route's JSON for a finished turn (also the data of a stream's `final` event)."""
    if entry.get("status") == "error":
        return {
            "status": "error",
            "error": entry.get("error") or "agent run failed",
            "message": message,
            **ids,
        }
    return {
        "response": entry.get("content"),
        "message": message,
        "status": "success",
        "message_count": message_count,
        **ids,
    }
