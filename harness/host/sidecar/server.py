"""The sidecar: a local host with no app of its own whose engine runs episodes and activities in
connected `durabletask` workers, and the gRPC `TaskHubSidecarService` beside its Durable HTTP API.

`Sidecar` is usable in-process (tests: `async with Sidecar(storage=..., grpc_port=0) as sidecar`);
the CLI (`python -m harness sidecar`) starts Azurite and runs one. The gRPC port is bound before the
host starts (a busy port ends the start with one line before the hub's lease is touched), and
served only once the host holds the hub and has its engine.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import grpc
from durabletask.internal import orchestrator_service_pb2_grpc as stubs

from ..clock import clock_for
from ..server import LocalHost
from .listen import grpc_server
from .router import HubRouter
from .service import SidecarService
from .workitems import WorkItems

log = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parent / "app"
DEFAULT_HUB = "default"
DEFAULT_GRPC_PORT = 8080  # the Durable Task Scheduler emulator's, so clients set up for it connect


@dataclass
class _Hub:
    """One task hub's local host and the work items of its workers."""

    local: LocalHost
    work: WorkItems


class Sidecar:
    """The gRPC service over the task hubs its clients name, each on its own local host engine with its
    Durable HTTP API; the default hub's API is on `port`, another hub's on a free port (logged)."""

    def __init__(
        self,
        *,
        storage: str,
        grpc_port: int = DEFAULT_GRPC_PORT,
        port: int = 0,
        host: str = "127.0.0.1",
        hub: str = DEFAULT_HUB,
        time: str = "real",
    ) -> None:
        """`port`: the default hub's HTTP instance API's (0: any free port); `grpc_port` likewise;
        `time`: each hub's clock (`real`, or virtual time `auto` / `manual`, kept per hub)."""
        self.storage = storage
        self.grpc_port = grpc_port
        self.port = port
        self.bind = host
        self.hub = hub
        self.time = time
        self.hubs: dict[str, _Hub] = {}
        self._server: grpc.aio.Server | None = None

    @property
    def local(self) -> LocalHost:
        """The default hub's local host."""
        return self.hubs[self.hub.lower()].local

    @property
    def work(self) -> WorkItems:
        """The default hub's work items."""
        return self.hubs[self.hub.lower()].work

    @property
    def url(self) -> str:
        """The default hub's base URL (its Durable HTTP API is under `/runtime/webhooks/durabletask`)."""
        return self.local.url

    @property
    def address(self) -> str:
        """What a worker or client is given as its host address."""
        shown = "localhost" if self.bind in {"127.0.0.1", "0.0.0.0", "", "::"} else self.bind
        return f"{shown}:{self.grpc_port}"

    async def _open_hub(self, name: str, port: int = 0) -> SidecarService:
        """Start a hub's local host (storage, the hub's lease, its HTTP API) and its service."""
        work = WorkItems()
        local = LocalHost(
            APP_DIR,
            port=port,
            host=self.bind,
            storage=self.storage,
            hub_name=name,
            remote=work,
            remote_entities=work,
            clock=clock_for(self.time),
        )
        await local.start()
        self.hubs[name.lower()] = _Hub(local, work)
        assert local.engine is not None
        if name.lower() != self.hub.lower():
            log.info(
                "task hub %s started: Durable HTTP API %s/runtime/webhooks/durabletask/", name, local.url
            )
        return SidecarService(local.engine, work, local.hub_name)

    async def start(self) -> Sidecar:
        """Bind the gRPC port, start the default hub's host, then serve gRPC."""
        try:
            self._server, self.grpc_port = grpc_server(self.bind, self.grpc_port)
            router = HubRouter(self.hub, self._open_hub)
            router.add(self.hub, await self._open_hub(self.hub, self.port))
            stubs.add_TaskHubSidecarServiceServicer_to_server(router, self._server)
            await self._server.start()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "Durable Task gRPC (TaskHubSidecarService): %s  default task hub: %s", self.address, self.hub
        )
        return self

    async def stop(self) -> None:
        """Stop serving: streams end (their workers reconnect to the next run), the hubs' hosts stop."""
        if self._server is not None:
            await self._server.stop(grace=1.0)
            self._server = None
        for hub in list(self.hubs.values()):
            await hub.local.stop()
        self.hubs.clear()

    async def __aenter__(self) -> Sidecar:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
