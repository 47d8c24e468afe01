"""The app's own storage account, as the library finds it from the environment: the reply-stream
store the app uses when given none (`LazyStore`), and the connection string other tables of the app
(the session index) use.

Read at first use, never at import: the Functions host sets these variables before it calls the app.
Kept out of `streams.py` so that the stores (`streams.TableStreamStore`, `redis_streams`) build on
`streams.py` and this module chooses among them, without the two importing each other.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import timedelta

from ._session_index import DEFAULT_TABLE as INDEX_TABLE
from ._session_index import TableSessionIndex
from .redis_streams import RedisStreamStore
from .streams import DEFAULT_TTL, StreamStore, TableStreamStore

STORAGE_ENV = "DURABLEAGENT_STREAM_STORAGE"
"""Connection string of the stream table's account; default `AzureWebJobsStorage`. `off` disables."""
REDIS_ENV = "DURABLEAGENT_STREAM_REDIS"
"""A Redis URL: keep streams there instead (`redis_streams.py`)."""
APP_STORAGE_ENV = "AzureWebJobsStorage"
INDEX_ENV = "DURABLEAGENT_SESSION_INDEX"
"""The session index's table in the app's storage (default `dafxsessions`); `off`: none, the session
list route then reads every session from the Durable HTTP API."""
_OFF = ("off", "0", "false", "none", "")
_AZURITE = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    "AccountKey=Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;"
    "TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
)


def table_connection(conn: str) -> str:
    """`conn` as the tables client takes it (`UseDevelopmentStorage=true` spelled out for Azurite)."""
    if conn.replace(" ", "").lower().startswith("usedevelopmentstorage=true"):
        return _AZURITE
    return conn


def app_storage(environ: Mapping[str, str] | None = None) -> str | None:
    """The app's own storage account (`AzureWebJobsStorage`) as a tables connection string, or None."""
    conn = (os.environ if environ is None else environ).get(APP_STORAGE_ENV)
    return table_connection(conn) if conn else None


def store_from_env(
    ttl: timedelta = DEFAULT_TTL, environ: Mapping[str, str] | None = None
) -> StreamStore | None:
    """The store the app uses when given none: Redis at `DURABLEAGENT_STREAM_REDIS` if set, else a
    table in `DURABLEAGENT_STREAM_STORAGE`'s account,
    else `AzureWebJobsStorage`'s; None (no streaming, replies arrive whole) when neither is set or
    the first is `off`. Read at first use, not at import: the host sets these before it calls."""
    env = os.environ if environ is None else environ
    redis_url = env.get(REDIS_ENV)
    if redis_url:
        return RedisStreamStore(redis_url, ttl)
    explicit = env.get(STORAGE_ENV)
    if explicit is not None and explicit.strip().lower() in _OFF:
        return None
    conn = explicit or env.get(APP_STORAGE_ENV)
    if not conn:
        return None
    return TableStreamStore(table_connection(conn), ttl=ttl)


class LazyStore:
    """Resolves the store from the environment at first use (None: streaming is off)."""

    def __init__(self, ttl: timedelta = DEFAULT_TTL, store: StreamStore | None = None) -> None:
        self.ttl = ttl
        self._resolved = store is not None
        self._store: StreamStore | None = store

    def get(self) -> StreamStore | None:
        if not self._resolved:
            self._store = store_from_env(self.ttl)
            self._resolved = True
        return self._store


class LazyIndex:
    """The session index, resolved from the environment at first use (None: no index): a table
    (`DURABLEAGENT_SESSION_INDEX`, default `dafxsessions`) in `AzureWebJobsStorage`'s account."""

    def __init__(self) -> None:
        self._resolved = False
        self._index: TableSessionIndex | None = None

    def get(self) -> TableSessionIndex | None:
        if not self._resolved:
            table = os.environ.get(INDEX_ENV)
            conn = app_storage()
            off = table is not None and table.strip().lower() in _OFF
            self._index = None if off or not conn else TableSessionIndex(conn, (table or INDEX_TABLE).strip())
            self._resolved = True
        return self._index
