"""Listing an agent's sessions: the entity listing of the Durable HTTP API, newest first, in pages.

The Python durable client has no entity listing, so this asks the Durable HTTP API the client's
binding points at (`rpcBaseUrl`: the extension's local endpoint on Azure, the local host offline)
for `entities/{name}`, following its `x-ms-continuation-token` header. That API lists in instance-id
order, while a caller wants the sessions they used last first, so the route reads the whole listing
(ids and times, without state), sorts it and pages it with its own continuation token.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from ._run_request import RequestError

CONTINUATION_HEADER = "x-ms-continuation-token"
API_PAGE = 1000
"""Entities per request to the Durable HTTP API (its maximum on the local host)."""
MAX_LISTED = 100_000
"""Sessions one listing reads at most: past this the route answers 503 rather than hold the worker."""
DEFAULT_TOP = 20
MAX_TOP = 100


class ListingError(Exception):
    """The sessions cannot be listed here (no Durable HTTP API to ask, or too many to sort)."""


EntityPage = tuple[list[dict[str, Any]], str | None]
Lister = Callable[[str, int, str | None], Awaitable[EntityPage]]


@dataclass(frozen=True, order=True)
class Listed:
    """One session in the listing. Sorts newest first (ISO times compare as text), then by key."""

    sort_time: tuple[int, ...]
    key: str
    last_activity: str | None


def _descending(text: str | None) -> tuple[int, ...]:
    """A sort key that puts later ISO-8601 times first (and sessions without a time last)."""
    return tuple(-ord(char) for char in (text or "")) + (1,)


def entity_lister(client: Any) -> Lister:
    """How to list entities with `client`: its own `list_entities` when it has one (a future SDK or
    a test double), else the Durable HTTP API at the binding's `rpcBaseUrl`."""
    own = getattr(client, "list_entities", None)
    if own is not None:
        return own  # type: ignore[no-any-return]
    bindings = getattr(client, "_orchestration_bindings", None)
    base = getattr(bindings, "rpc_base_url", None)
    if not isinstance(base, str) or not base:
        raise ListingError("the durable client has no rpcBaseUrl to list entities with")

    async def over_http(name: str, top: int, token: str | None) -> EntityPage:
        headers = {CONTINUATION_HEADER: token} if token else {}
        params = {"fetchState": "false", "top": str(top)}
        url = f"{base.rstrip('/')}/entities/{name}"
        async with aiohttp.ClientSession() as http, http.get(url, params=params, headers=headers) as resp:
            if resp.status == 404:  # no entity of that name exists yet
                return [], None
            if resp.status != 200:
                # Worded as the durable client words it, so 5xx counts as the back end failing.
                raise Exception(f"listing entities failed with an unexpected status code {resp.status}")
            items = await resp.json(content_type=None)
            return (items if isinstance(items, list) else []), resp.headers.get(CONTINUATION_HEADER)

    return over_http


async def list_sessions(lister: Lister, entity_name: str) -> list[Listed]:
    """Every session of one entity name, newest first."""
    listed: list[Listed] = []
    token: str | None = None
    while True:
        page, token = await lister(entity_name, API_PAGE, token)
        for item in page:
            entity = item.get("entityId") if isinstance(item, dict) else None
            key = entity.get("key") if isinstance(entity, dict) else None
            if isinstance(key, str):
                when = item.get("lastOperationTime")
                when = when if isinstance(when, str) else None
                listed.append(Listed(_descending(when), key, when))
        if len(listed) > MAX_LISTED:
            raise ListingError(f"more than {MAX_LISTED} sessions to list; the route lists at most that many")
        if not token:
            return sorted(listed)


def encode_cursor(item: Listed) -> str:
    """A continuation token: where the last page ended, in the listing's order."""
    raw = json.dumps([item.last_activity, item.key]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def after_cursor(listed: list[Listed], token: str) -> list[Listed]:
    """The sessions after the one `token` names (sessions used meanwhile move to the front)."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        when, key = json.loads(raw)
        if not isinstance(key, str) or not isinstance(when, str | None):
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise RequestError("invalid continuation token") from None
    mark = Listed(_descending(when), key, when)
    return [item for item in listed if item > mark]


def parse_top(value: str | None) -> int:
    if value is None:
        return DEFAULT_TOP
    try:
        top = int(value)
    except ValueError:
        raise RequestError(f"'top' must be an integer from 1 to {MAX_TOP}") from None
    if not 1 <= top <= MAX_TOP:
        raise RequestError(f"'top' must be an integer from 1 to {MAX_TOP}")
    return top


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


def idle_longer_than(item: Listed, seconds: float, now: datetime) -> bool:
    """Whether the Durable API says the session had no operation for `seconds` (a turn is an
    operation, so its last turn is at least that old too; the entity checks again)."""
    when = parse_time(item.last_activity)
    return when is not None and (now - when).total_seconds() > seconds
