"""The Durable extension's HTTP API for entities, under `/runtime/webhooks/durabletask/`.

This is what `DurableOrchestrationClient.signal_entity` / `read_entity_state` call (through the client
binding's `rpcBaseUrl`), plus listing and a purge. Every error is a 4xx/503 JSON body, never a 500.
"""

from __future__ import annotations

import base64
import binascii
import json
import logging
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from aiohttp import web
from azure.core.exceptions import AzureError

from .entities import EntityDispatcher
from .history import json_or_text
from .http import KeyPolicy
from .responses import json_error, json_response
from .store import EntityStore, StorageUnavailable, instance_id, invalid_key_reason

if TYPE_CHECKING:
    from .instance_api import InstanceApi

log = logging.getLogger(__name__)

BASE_PATH = "/runtime/webhooks/durabletask"
MAX_SIGNAL_BODY = 1024 * 1024
DEFAULT_TOP = 100
MAX_TOP = 1000
CONTINUATION_HEADER = "x-ms-continuation-token"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _iso(stamp: datetime | None) -> str | None:
    if stamp is None:
        return None
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=UTC)
    return stamp.astimezone(UTC).isoformat().replace("+00:00", "Z")


def any_segment(path: str) -> str:
    """`path` with each `{variable}` taking any one path segment: aiohttp's default takes none holding
    '{' or '}', and instance ids, event names and entity keys may (the SDK sends them unescaped)."""
    return re.sub(r"\{(\w+)\}", r"{\1:[^/]+}", path)


def encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def decode_token(token: str, prefix: str) -> str:
    """The last instance id of the previous page; ValueError for anything we did not issue."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise ValueError("invalid continuation token") from exc
    after = data.get("after") if isinstance(data, dict) else None
    if not isinstance(after, str) or not after.startswith(prefix):
        raise ValueError("invalid continuation token")
    return after


class DurableApi:
    """Entity endpoints; mounted twice when keys are enforced (public + a secret in-process base)."""

    gate: Callable[[], str | None] | None = None  # why the host must not serve the hub now (its lease)

    def __init__(
        self,
        store: EntityStore,
        dispatcher: EntityDispatcher,
        keys: KeyPolicy,
        instances: InstanceApi | None = None,
    ) -> None:
        self.store = store
        self.dispatcher = dispatcher
        self.keys = keys
        self.instances = instances

    def add_routes(self, app: web.Application, base: str = BASE_PATH, trusted: bool = False) -> None:
        """Register the entity routes under `base`; `trusted` bases skip key checks (the SDK's rpc url)."""
        wrap = self._guard(trusted)
        app.router.add_post(base + any_segment("/entities/{name}/{key}"), wrap(self.signal))
        app.router.add_get(base + any_segment("/entities/{name}/{key}"), wrap(self.get_state))
        app.router.add_delete(base + any_segment("/entities/{name}/{key}"), wrap(self.purge))
        app.router.add_get(base + any_segment("/entities/{name}"), wrap(self.list_entities))
        if self.instances is not None:
            self.instances.add_routes(app, base, wrap)
        app.router.add_route("*", base + r"/{tail:[\s\S]*}", wrap(self.unsupported))

    def _guard(self, trusted: bool) -> Callable[[Handler], Handler]:
        """Key check (when enforcing) and storage outages -> 503 for every handler."""

        def wrap(handler: Handler) -> Handler:
            async def guarded(request: web.Request) -> web.StreamResponse:
                if not trusted and not self.keys.allows(request, "admin"):
                    return json_error(401, "a valid key is required (?code= or x-functions-key header)")
                if self.gate is not None and (problem := self.gate()):
                    return json_error(503, problem)
                try:
                    return await handler(request)
                except StorageUnavailable as exc:
                    log.warning("durable API %s %s: %s", request.method, request.path, exc)
                    return json_error(503, f"storage unavailable: {exc}")
                except AzureError as exc:
                    log.exception("durable API %s %s: storage error", request.method, request.path)
                    return json_error(503, f"storage error: {type(exc).__name__}")

            return guarded

        return wrap

    def _entity(self, request: web.Request, with_key: bool = True) -> tuple[str, str] | web.Response:
        """Validated (lower-cased name, key) from the URL, or the error response."""
        name = request.match_info["name"].lower()
        key = request.match_info.get("key", "x") if with_key else "x"
        if name not in self.dispatcher.entities:
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
        token = request.headers.get(CONTINUATION_HEADER) or request.query.get("continuationToken")
        after = None
        if token:
            try:
                after = decode_token(token, f"@{name}@")
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
        headers = {CONTINUATION_HEADER: encode_token(last)} if last else None
        return json_response(items, headers=headers)

    async def unsupported(self, request: web.Request) -> web.StreamResponse:
        """Anything else under the Durable API base."""
        return json_error(404, f"no durable API route {request.method} {request.path}")
