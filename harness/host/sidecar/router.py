"""One gRPC service for every task hub: each call goes to the hub its `taskhub` metadata names (the
sidecar's default hub without it), whose host is started on first use.

Each hub is a local host of its own (its own stores, engine and hub lease, and a Durable HTTP API on
a port of its own), so hubs share nothing but the process and the storage account, as separate
hubs of the Durable Task Scheduler do.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from google.protobuf import empty_pb2

from .service import SidecarService

log = logging.getLogger(__name__)

HUB_METADATA = "taskhub"
MAX_HUBS = 16  # hubs one sidecar serves at most (a typo in a client's hub name must not grow it forever)
HUB_RULE = "letters and digits, 3 to 45 characters, starting with a letter"
_STREAMS = ("GetWorkItems", "StreamInstanceHistory")


def hub_problem(name: str) -> str | None:
    """Why `name` cannot be a task hub name, or None (Azure Storage's rule for hub names)."""
    if 3 <= len(name) <= 45 and name.isascii() and name.isalnum() and name[0].isalpha():
        return None
    return f"task hub {name!r}: a task hub name is {HUB_RULE}"


class HubRouter(stubs.TaskHubSidecarServiceServicer):
    """Routes each call to its hub's `SidecarService` (`open_hub` starts a hub's host on first use)."""

    def __init__(self, default: str, open_hub: Callable[[str], Awaitable[SidecarService]]) -> None:
        self.default = default
        self.open_hub = open_hub
        self._services: dict[str, SidecarService] = {}
        self._opening: dict[str, asyncio.Lock] = {}

    def add(self, name: str, service: SidecarService) -> None:
        """A hub already started (the default one)."""
        self._services[name.lower()] = service

    async def service(self, context: grpc.aio.ServicerContext) -> SidecarService:
        """The service of the hub the call names (aborting the call when it cannot be served)."""
        name = self.default
        for key, value in context.invocation_metadata() or ():
            if key == HUB_METADATA and value:
                name = value
        found = self._services.get(name.lower())
        if found is not None:
            return found
        problem = hub_problem(name)
        if problem is None and len(self._services) >= MAX_HUBS:
            problem = f"this sidecar serves {MAX_HUBS} task hubs already; task hub {name!r} is not started"
        if problem is not None:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        async with self._opening.setdefault(name.lower(), asyncio.Lock()):
            found = self._services.get(name.lower())
            if found is None:
                try:
                    found = await self.open_hub(name)
                except Exception as exc:
                    log.warning("task hub %s could not be started: %s", name, exc)
                    await context.abort(
                        grpc.StatusCode.UNAVAILABLE, f"task hub {name!r} could not be started: {exc}"
                    )
                self._services[name.lower()] = found
        return found

    async def Hello(self, request: empty_pb2.Empty, context: grpc.aio.ServicerContext) -> empty_pb2.Empty:  # noqa: N802
        """The worker's and client's connection check (no hub needed)."""
        return empty_pb2.Empty()


def _unary(name: str) -> Callable[..., Awaitable[Any]]:
    async def call(self: HubRouter, request: Any, context: grpc.aio.ServicerContext) -> Any:
        service = await self.service(context)
        return await getattr(service, name)(request, context)

    call.__name__ = name
    return call


def _stream(name: str) -> Callable[..., AsyncIterator[Any]]:
    async def call(self: HubRouter, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        service = await self.service(context)
        async for item in getattr(service, name)(request, context):
            yield item

    call.__name__ = name
    return call


for _name in [n for n in vars(stubs.TaskHubSidecarServiceServicer) if n[:1].isupper() and n != "Hello"]:
    setattr(HubRouter, _name, _stream(_name) if _name in _STREAMS else _unary(_name))
