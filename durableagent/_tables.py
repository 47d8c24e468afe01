"""One Azure Storage table, with an async client per event loop (a client is bound to the loop it
was made on: the routes run on the worker's loop, the entities on the agent loop) and the table
created on first use. Shared by the reply streams (`streams.py`) and the session index."""

from __future__ import annotations

import asyncio
import weakref
from typing import Any


class LoopTable:
    def __init__(self, connection_string: str, table: str) -> None:
        self.connection_string = connection_string
        self.table = table
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = weakref.WeakKeyDictionary()
        self._created = False

    async def client(self) -> Any:
        """The `azure.data.tables.aio.TableClient` of the running loop."""
        from azure.data.tables.aio import TableClient

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = TableClient.from_connection_string(self.connection_string, self.table)
            self._clients[loop] = client
        if not self._created:
            from azure.core.exceptions import ResourceExistsError

            try:
                await client.create_table()
            except ResourceExistsError:
                pass
            self._created = True
        return client

    async def close(self) -> None:
        """Close the running loop's client (its connections), if it has one."""
        client = self._clients.pop(asyncio.get_running_loop(), None)
        if client is not None:
            await client.close()
