"""Reply streams in Redis, for lower latency across instances: `stream_store=RedisStreamStore(url)`.

Where: one sorted set per turn's stream, key `dafx:stream:{partition}` (the same SHA-256 partition
as the table store), members `ROWKEY\\nJSON` with score 0, so a lexicographic range after the
cursor's row key is the rest of the stream in order. Each append renews the key's expiry
(`stream_ttl`): Redis deletes whole streams itself, so `sweep` has nothing to do.

Why a crash is safe: as with the table store, the stream is provisional and the session state
is the truth; a Redis that is down or flushed costs readers chunks, never a turn or its reply.
Needs the `redis` package (`pip install 'durableagent[redis]'`).
"""

from __future__ import annotations

import asyncio
import json
import weakref
from datetime import timedelta
from typing import Any

from .streams import DEFAULT_TTL, StreamEvent, StreamId

KEY_PREFIX = "dafx:stream:"
_AFTER_ROW = "\x7f"  # sorts after "ROWKEY\n...": a range from "(ROWKEY\x7f" skips that row itself


class RedisStreamStore:
    """The stream store protocol over Redis sorted sets; one client per event loop."""

    def __init__(self, url: str, ttl: timedelta = DEFAULT_TTL) -> None:
        self.url = url
        self.ttl = ttl
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()

    def _client(self) -> Any:
        import redis.asyncio as redis

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = redis.Redis.from_url(self.url)
            self._clients[loop] = client
        return client

    async def append(self, stream: StreamId, events: list[StreamEvent]) -> None:
        key = KEY_PREFIX + stream.partition
        members = {f"{e.row_key}\n{json.dumps({'kind': e.kind, 'data': e.data})}": 0 for e in events}
        async with self._client().pipeline(transaction=True) as pipe:
            pipe.zadd(key, members)
            pipe.expire(key, max(int(self.ttl.total_seconds()), 1))
            await pipe.execute()

    async def read(self, stream: StreamId, after: str | None) -> list[StreamEvent]:
        low = f"({after}{_AFTER_ROW}" if after else "-"
        raw = await self._client().zrangebylex(KEY_PREFIX + stream.partition, low, "+")
        events: list[StreamEvent] = []
        for member in raw:
            text = member.decode() if isinstance(member, bytes) else str(member)
            row, _, body = text.partition("\n")
            attempt, _, seq = row.partition(".")
            payload = json.loads(body)
            events.append(
                StreamEvent(int(attempt), int(seq), str(payload.get("kind")), payload.get("data") or {})
            )
        return events

    async def sweep(self) -> int:
        return 0  # keys expire in Redis
