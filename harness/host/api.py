"""What the two halves of the Durable HTTP API share: the base path, the guard, keys and paging.

The entity API (`entities/api.py`) and the instance API (`orchestrations/api.py`) are mounted by
`server.py` under `BASE_PATH` (and, when keys are enforced, under a secret base the SDK's client
binding uses, which skips the key check). Every handler runs inside one `ApiGuard`: the key check,
the hub lease (503 naming the holder while it is not ours) and storage outages as 503 JSON, never a
500. A listing pages with one opaque continuation token, the same for entities and instances.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import logging
import re
from collections.abc import Awaitable, Callable

from aiohttp import web
from azure.core.exceptions import AzureError

from .responses import json_error
from .storage.tables import StorageUnavailable

log = logging.getLogger(__name__)

BASE_PATH = "/runtime/webhooks/durabletask"
CONTINUATION_HEADER = "x-ms-continuation-token"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class KeyPolicy:
    """`--enforce-keys`: FUNCTION/ADMIN routes need `?code=` or `x-functions-key` equal to the key."""

    def __init__(self, enforce: bool, key: str) -> None:
        self.enforce = enforce
        self.key = key

    def allows(self, request: web.Request, level: str) -> bool:
        """Anonymous routes are always open; keys are only checked when enforcing."""
        if not self.enforce or level == "anonymous":
            return True
        given = request.query.get("code") or request.headers.get("x-functions-key") or ""
        return hmac.compare_digest(given.encode(), self.key.encode())


def any_segment(path: str) -> str:
    """`path` with each `{variable}` taking any one path segment: aiohttp's default takes none holding
    '{' or '}', and instance ids, event names and entity keys may (the SDK sends them unescaped)."""
    return re.sub(r"\{(\w+)\}", r"{\1:[^/]+}", path)


def encode_token(after: str) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": after}).encode()).decode()


def decode_token(token: str, prefix: str) -> str:
    """The last id of the previous page; ValueError for anything we did not issue."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode("ascii")))
    except (ValueError, binascii.Error, UnicodeError) as exc:
        raise ValueError("invalid continuation token") from exc
    after = data.get("after") if isinstance(data, dict) else None
    if not isinstance(after, str) or not after.startswith(prefix):
        raise ValueError("invalid continuation token")
    return after


def page_after(request: web.Request, prefix: str = "") -> str | None:
    """Where the page a request asks for starts (header or `?continuationToken=`); ValueError for a
    token we did not issue, or one for ids outside `prefix`."""
    token = request.headers.get(CONTINUATION_HEADER) or request.query.get("continuationToken")
    return decode_token(token, prefix) if token else None


def page_headers(last: str | None) -> dict[str, str] | None:
    """The continuation header of a page after which more remain (`last`: its last id)."""
    return {CONTINUATION_HEADER: encode_token(last)} if last else None


class ApiGuard:
    """Wraps every Durable API handler: key check, lease gate, storage outages as 503."""

    def __init__(self, keys: KeyPolicy) -> None:
        self.keys = keys
        self.gate: Callable[[], str | None] | None = None  # why the host must not serve the hub now

    def wrap(self, trusted: bool) -> Callable[[Handler], Handler]:
        """The wrapper for handlers under one base; `trusted` bases skip key checks (the SDK's rpc url)."""

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


async def unsupported(request: web.Request) -> web.StreamResponse:
    """Anything else under the Durable API base."""
    return json_error(404, f"no durable API route {request.method} {request.path}")
