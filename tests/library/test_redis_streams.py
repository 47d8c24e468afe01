"""The Redis stream store against a real `redis-server` (Debian package `redis-server`), started on
a free port for this module; skipped, saying so, where the server is not installed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta

import pytest

from durableagent import RedisStreamStore
from durableagent.streams import StreamEvent, StreamId, row_key
from fakes import ScriptedChatClient

from .conftest import make_agent
from .test_streams import sse_run, stored_turn

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        shutil.which("redis-server") is None,
        reason="redis-server is not installed (apt-get install redis-server)",
    ),
]
pytest.importorskip("redis", reason="the redis package is not installed (pip install 'durableagent[redis]')")


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    work = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(work)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:  # readiness probe: the port accepts connections
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert server.poll() is None and time.monotonic() < deadline, "redis-server did not start"
            time.sleep(0.02)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(10)


async def test_append_read_after_a_cursor_in_order(redis_url):
    store = RedisStreamStore(redis_url)
    stream = StreamId("dafx-a", "k", "c")
    await store.append(stream, [StreamEvent(5, 0, "start"), StreamEvent(5, 1, "text", {"text": "a"})])
    await store.append(
        stream, [StreamEvent(5, 2, "text", {"text": "b"}), StreamEvent(5, 3, "end", {"status": "success"})]
    )
    every = await store.read(stream, None)
    assert [(e.seq, e.kind, e.data) for e in every] == [
        (0, "start", {}),
        (1, "text", {"text": "a"}),
        (2, "text", {"text": "b"}),
        (3, "end", {"status": "success"}),
    ]
    assert [e.seq for e in await store.read(stream, row_key(5, 1))] == [2, 3]
    assert await store.read(stream, row_key(5, 3)) == []
    assert await store.read(StreamId("dafx-a", "k", "other"), None) == []


async def test_streams_expire_in_redis(redis_url):
    import redis.asyncio as redis

    store = RedisStreamStore(redis_url, ttl=timedelta(seconds=30))
    stream = StreamId("dafx-a", "k", "ttl")
    await store.append(stream, [StreamEvent(1, 0, "start")])
    client = redis.Redis.from_url(redis_url)
    ttl = await client.ttl(f"dafx:stream:{stream.partition}")
    await client.aclose()
    assert 0 < ttl <= 30


async def test_a_streaming_turn_through_redis(build, redis_url):
    store = RedisStreamStore(redis_url)
    _, host = build(make_agent(ScriptedChatClient(steps=[{"chunks": ["red", "is"]}])), stream_store=store)
    _, events = await sse_run(host, "WeatherAgent", {"message": "hi", "sessionId": "r"})
    assert events[-1][0] == "final" and events[-1][1]["response"] == "redis"
    correlation = events[0][1]["correlationId"]
    rows = await stored_turn(store, StreamId("dafx-weatheragent", "r", correlation))
    assert [r.kind for r in rows] == ["queued", "start", "text", "text", "end"]  # the route's mark first
