"""The Durable extension's HTTP API for entities, under `/runtime/webhooks/durabletask/`.

This is what `DurableOrchestrationClient.signal_entity` / `read_entity_state` call (through the client
binding's `rpcBaseUrl`), plus listing and a purge. Every error is a 4xx/503 JSON body, never a 500.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

from aiohttp import web

from ..api import Handler, any_segment, page_after, page_headers
from ..orchestrations.history import json_or_text
from ..responses import json_error, json_response
from .dispatcher import EntityDispatcher
from .store import EntityStore, instance_id, invalid_key_reason

MAX_SIGNAL_BODY = 1024 * 1024
DEFAULT_TOP = 100
MAX_TOP = 1000


def _iso(stamp: datetime | None) -> str | None:
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


class EntityApi:
    """Entity endpoints; `server.py` mounts them under each Durable API base, inside its guard."""

    def __init__(self, store: EntityStore, dispatcher: EntityDispatcher) -> None:
        self.store = store
        self.dispatcher = dispatcher

    def add_routes(self, app: web.Application, base: str, wrap: Callable[[Handler], Handler]) -> None:
        """Register the entity routes under `base`, each wrapped in the Durable API's guard `wrap`."""
        path = base + any_segment("/entities/{name}/{key}")
        app.router.add_post(path, wrap(self.signal))
        app.router.add_get(path, wrap(self.get_state))
        app.router.add_delete(path, wrap(self.purge))
        app.router.add_get(base + any_segment("/entities/{name}"), wrap(self.list_entities))

    def _entity(self, request: web.Request, with_key: bool = True) -> tuple[str, str] | web.Response:
        """Validated (lower-cased name, key) from the URL, or the error response."""
        name = request.match_info["name"].lower()
        key = request.match_info.get("key", "x") if with_key else "x"
        if self.dispatcher.remote is None and name not in self.dispatcher.entities:  # remote: any name
            return json_error(404, f"no entity function named {name!r}")
        reason = invalid_key_reason(name, key)
        if reason:
            return json_error(400, reason)
        return name, key

    async def signal(self, request: web.Request) -> web.StreamResponse:
        """Persist the signal, then answer 202 (it is applied asynchronously, in order)."""
        entity = self._entity(request)
        if isinstance(entity, web.Response):
            return entity
        name, key = entity
        operation = request.query.get("op", "")
        if not operation:
            return json_error(400, "missing ?op= (the operation name)")
        if request.content_length is not None and request.content_length > MAX_SIGNAL_BODY:
            return json_error(413, f"signal input larger than {MAX_SIGNAL_BODY} bytes")
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return json_error(413, f"signal input larger than {MAX_SIGNAL_BODY} bytes")
        if len(raw) > MAX_SIGNAL_BODY:
            return json_error(413, f"signal input larger than {MAX_SIGNAL_BODY} bytes")
        input_text: str | None = None
        if raw.strip():
            try:
                token = json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                return json_error(400, "request body is not valid UTF-8")
            except json.JSONDecodeError as exc:
                return json_error(400, f"request body is not valid JSON: {exc}")
            except RecursionError:
                return json_error(400, "request body is nested too deeply")
            try:
                input_text = json.dumps(token)
            except RecursionError:
                return json_error(400, "request body is nested too deeply")
        accepted = await self.store.add_signal(name, key, operation, input_text)
        self.dispatcher.notify(instance_id(name, key), accepted)
        return web.Response(status=202)

    async def get_state(self, request: web.Request) -> web.StreamResponse:
        """200 with the state JSON, 404 when the entity does not exist."""
        entity = self._entity(request)
        if isinstance(entity, web.Response):
            return entity
        record = await self.store.read(instance_id(*entity))
        if record is None or not record.exists:
            return json_error(404, "entity not found")
        return web.Response(
            text=record.state if record.state is not None else "null",
            content_type="application/json",
            charset="utf-8",
        )

    async def purge(self, request: web.Request) -> web.StreamResponse:
        """Delete state and pending signals (idempotent, serialised with the entity's worker)."""
        entity = self._entity(request)
        if isinstance(entity, web.Response):
            return entity
        iid = instance_id(*entity)
        async with self.dispatcher.lock(iid):
            await self.store.purge(iid)
            self.dispatcher.discard(iid)
        return web.Response(status=204)

    async def list_entities(self, request: web.Request) -> web.StreamResponse:
        """One page of entities; `x-ms-continuation-token` (header) when more remain."""
        entity = self._entity(request, with_key=False)
        if isinstance(entity, web.Response):
            return entity
        name = entity[0]
        fetch = request.query.get("fetchState", "false").lower()
        if fetch not in {"true", "false"}:
            return json_error(400, "fetchState must be true or false")
        top_text = request.query.get("top", str(DEFAULT_TOP))
        try:
            top = int(top_text)
        except ValueError:
            return json_error(400, "top must be an integer")
        if not 1 <= top <= MAX_TOP:
            return json_error(400, f"top must be between 1 and {MAX_TOP}")
        try:
            after = page_after(request, f"@{name}@")
        except ValueError as exc:
            return json_error(400, str(exc))
        records, last = await self.store.list_entities(name, top, after, fetch == "true")
        items = []
        for record in records:
            item: dict[str, object] = {
                "entityId": {"name": record.name or name, "key": record.key},
                "lastOperationTime": _iso(record.last_operation_time),
            }
            if fetch == "true":
                item["state"] = json_or_text(record.state)
            items.append(item)
        return json_response(items, headers=page_headers(last))
