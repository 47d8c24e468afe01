"""Listing an agent's sessions, newest first, in pages.

With the session index (`_session_index.py`, a table in the app's storage, the default wherever
`AzureWebJobsStorage` is set) a page is one point read of the index's head (its newest rows; a range
query of the index for pages past it) plus the page's states, whatever the number of sessions; its
continuation token is the last row key sent.

Without it (or when it cannot be read) the route falls back to the entity listing of the Durable
HTTP API: the Python durable client has no entity listing, so this asks the API the client's binding
points at (`rpcBaseUrl`: the extension's local endpoint on Azure, the local host offline) for
`entities/{name}`, following its `x-ms-continuation-token` header. That API lists in instance-id
order, so the route reads the whole listing (ids and times, without state), sorts it and pages it
with its own continuation token. The index's reconciliation reads the same listing.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import aiohttp

from . import clock
from ._backend import DurableClient, read_state
from ._run_request import RequestError
from ._session_index import (
    RECONCILE_SECONDS,
    IndexRow,
    TableSessionIndex,
    activity_of,
    is_row_key,
    iso,
    parse_time,
    row_key,
)
from .session import AgentSessionId, entity_name_for
from .state import AgentState

logger = logging.getLogger(__name__)

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


async def entity_pages(lister: Lister, entity_name: str) -> AsyncIterator[list[Listed]]:
    """The sessions of one entity name, page by page, in the Durable HTTP API's (id) order."""
    token: str | None = None
    while True:
        page, token = await lister(entity_name, API_PAGE, token)
        listed: list[Listed] = []
        for item in page:
            entity = item.get("entityId") if isinstance(item, dict) else None
            key = entity.get("key") if isinstance(entity, dict) else None
            if isinstance(key, str):
                when = item.get("lastOperationTime")
                when = when if isinstance(when, str) else None
                listed.append(Listed(_descending(when), key, when))
        yield listed
        if not token:
            return


async def list_sessions(lister: Lister, entity_name: str) -> list[Listed]:
    """Every session of one entity name, newest first."""
    listed: list[Listed] = []
    async for page in entity_pages(lister, entity_name):
        listed.extend(page)
        if len(listed) > MAX_LISTED:
            raise ListingError(f"more than {MAX_LISTED} sessions to list; the route lists at most that many")
    return sorted(listed)


# -- from the session index ------------------------------------------------------------------------
Entry = tuple[str, "str | None", "dict[str, Any] | None"]
"""One listed session: key, last activity, stored state (None: gone since it was listed)."""
REPAIR_AFTER = timedelta(seconds=30)
"""A row that disagrees with its session's state is only repaired once older than this: the entity
writes a turn's row a moment before it commits the turn, so a younger one may be ahead of its state."""
_reconciling: set[tuple[str, str, str]] = set()
_reconciled: dict[tuple[str, str, str], datetime] = {}
"""When each partition was last reconciled, as this process knows it: a listing reads the index's
own record only when this is older than RECONCILE_SECONDS (one read fewer per page)."""


def _mark(index: TableSessionIndex, entity_name: str) -> tuple[str, str, str]:
    return (index.connection_string, index.table, entity_name)


_background: set[asyncio.Task[None]] = set()


async def reconcile(index: TableSessionIndex, lister: Lister, entity_name: str) -> int:
    """Give every session the Durable HTTP API lists and the index lacks a row (dated by its last
    operation: its next turn, or a listing, moves it to its last turn), and make the index's head
    again from the index (a head write lost after its row's is repaired here); returns how many."""
    started = clock.utc_now()
    have = await index.keys(entity_name)
    added = 0
    async for page in entity_pages(lister, entity_name):
        missing = [
            (item.key, parse_time(item.last_activity) or started) for item in page if item.key not in have
        ]
        added += await index.put_many(entity_name, missing)
    await index.mark_reconciled(entity_name, started)
    await index.rebuild_head(entity_name)  # a head write lost (a crash after a row's) ends here
    _reconciled[_mark(index, entity_name)] = started
    if added:
        logger.info("session index of %s: %d session(s) added by reconciling", entity_name, added)
    return added


def _reconcile_later(index: TableSessionIndex, lister: Lister, entity_name: str) -> None:
    """Reconcile in the background (one at a time per index and partition in this process)."""
    mark = _mark(index, entity_name)
    if mark in _reconciling:
        return
    _reconciling.add(mark)

    async def run() -> None:
        try:
            await reconcile(index, lister, entity_name)
        except Exception as exc:
            logger.warning("reconciling the session index of %s failed: %s", entity_name, exc)
        finally:
            _reconciling.discard(mark)

    task = asyncio.get_running_loop().create_task(run())
    _background.add(task)
    task.add_done_callback(_background.discard)


async def indexed_page(
    index: TableSessionIndex,
    client: DurableClient,
    agent: str,
    top: int,
    token: str | None,
    idle_seconds: float | None,
) -> tuple[list[Entry], str | None]:
    """One page of the agent's sessions from the index, newest first, and the next page's token.

    Sessions idle past `idle_seconds` are signalled to expire and end the listing (they are the
    oldest, so the last rows). Each listed session's state is read (for its message count), and a
    row that disagrees with it is repaired (see the index's module docstring)."""
    if token is not None and not is_row_key(token):
        raise RequestError("invalid continuation token")
    name = entity_name_for(agent)
    await index.flushed()  # the index writes of turns this process ran: a listing after a turn shows it
    now = clock.utc_now()
    known = _reconciled.get(_mark(index, name))
    if known is None or (now - known).total_seconds() > RECONCILE_SECONDS:
        reconciled = await index.reconciled(name)
        if reconciled is None:  # the first listing: the sessions from before the index
            await reconcile(index, entity_lister(client), name)
        elif (now - reconciled).total_seconds() > RECONCILE_SECONDS:
            _reconcile_later(index, entity_lister(client), name)
        else:
            _reconciled[_mark(index, name)] = reconciled
    rows = await index.head_page(name, token, top + 1)
    if rows is None:  # past the head: a range query of the index
        rows = await index.page(name, token, top + 1)
    more = rows[top - 1].row_key if len(rows) > top else None
    rows = rows[:top]
    if idle_seconds is not None:
        idle = [row for row in rows if _older(row.last_activity, idle_seconds, now)]
        if idle:
            await asyncio.gather(*(_expire(client, agent, row.key, idle_seconds) for row in idle))
            logger.info("expiring %d idle session(s) of %s", len(idle), agent)
            rows, more = rows[: rows.index(idle[0])], None
    states = await asyncio.gather(*(read_state(client, AgentSessionId(agent, row.key)) for row in rows))
    entries: list[Entry] = []
    page = (token, {row.row_key for row in rows})
    for row, data in zip(rows, states, strict=True):
        entry = await _checked(index, name, row, data, now, page)
        if entry is not None:
            entries.append(entry)
    return entries, more


async def _checked(
    index: TableSessionIndex,
    name: str,
    row: IndexRow,
    data: dict[str, Any] | None,
    now: datetime,
    page: tuple[str | None, set[str]],
) -> Entry | None:
    """The listing's entry for `row`, after repairing the row when it disagrees with the state;
    `page`: the token the page starts after and its rows."""
    when = parse_time(row.last_activity)
    settled = when is None or now - when > REPAIR_AFTER
    if data is None:  # the session is gone (its delete's row removal was lost), or not committed yet
        if settled:
            await index.drop(name, row.row_key)
        return None
    try:
        activity = activity_of(AgentState.from_dict(data))
    except ValueError:
        return row.key, row.last_activity, data  # unreadable: listed, so it can still be seen and deleted
    if activity is None or row_key(row.key, activity) == row.row_key or not settled:
        return row.key, row.last_activity, data
    own = row_key(row.key, activity)
    if await index.has(name, own):  # a stale row: the session is listed at its own
        await index.drop(name, row.row_key, newer=IndexRow(own, row.key, iso(activity)))
        after, listed = page
        if own in listed or (after is not None and own <= after):
            return None  # listed at its own row, on this page or an earlier one
        return row.key, iso(activity), data  # a head that missed its own row (which it now holds)
    await index.put(name, row.key, activity, when)  # its newest row was lost: write it now
    return row.key, iso(activity), data


def _older(last_activity: str, seconds: float, now: datetime) -> bool:
    when = parse_time(last_activity)
    return when is not None and (now - when).total_seconds() > seconds


async def _expire(client: DurableClient, agent: str, key: str, seconds: float) -> None:
    entity = AgentSessionId(agent, key).to_entity_id()
    await client.signal_entity(entity, "expire", {"idle_seconds": seconds})


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


def idle_longer_than(item: Listed, seconds: float, now: datetime) -> bool:
    """Whether the Durable API says the session had no operation for `seconds` (a turn is an
    operation, so its last turn is at least that old too; the entity checks again)."""
    when = parse_time(item.last_activity)
    return when is not None and (now - when).total_seconds() > seconds
