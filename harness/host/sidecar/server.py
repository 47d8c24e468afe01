"""The sidecar: a local host with no app of its own whose engine runs episodes and activities in
connected `durabletask` workers, and the gRPC `TaskHubSidecarService` beside its Durable HTTP API.

`Sidecar` is usable in-process (tests: `async with Sidecar(storage=..., grpc_port=0) as sidecar`);
the CLI (`python -m harness sidecar`) starts Azurite and runs one. The gRPC port is bound before the
host starts (a busy port ends the start with one line before the hub's lease is touched), and
served only once the host holds the hub and has its engine.
"""

from __future__ import annotations

import logging
from pathlib import Path
from types import TracebackType

import grpc
from durabletask.internal import orchestrator_service_pb2_grpc as stubs

from ..server import LocalHost
from .service import SidecarService
from .workitems import WorkItems

log = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parent / "app"
DEFAULT_HUB = "default"
DEFAULT_GRPC_PORT = 8080  # the Durable Task Scheduler emulator's, so clients set up for it connect
MAX_MESSAGE = 64 * 1024 * 1024  # bytes a gRPC message may have (a long history in one work item)


class PortBusy(OSError):
    """The gRPC port could not be bound."""


class Sidecar:
    """The gRPC service and the HTTP API over one task hub of the local host's engine."""

    def __init__(
        self,
        *,
        storage: str,
        grpc_port: int = DEFAULT_GRPC_PORT,
        port: int = 0,
        host: str = "127.0.0.1",
        hub: str = DEFAULT_HUB,
    ) -> None:
        """`port`: the HTTP instance API's (0: any free port); `grpc_port` likewise (0: any)."""
        self.work = WorkItems()
        self.local = LocalHost(
            APP_DIR,
            port=port,
            host=host,
            storage=storage,
            hub_name=hub,
            remote=self.work,
            remote_entities=self.work,
        )
        self.grpc_port = grpc_port
        self.bind = host
        self.hub = hub
        self._server: grpc.aio.Server | None = None

    @property
    def url(self) -> str:
        """The HTTP API's base URL (the Durable HTTP API is under `/runtime/webhooks/durabletask`)."""
        return self.local.url

    @property
    def address(self) -> str:
        """What a worker or client is given as its host address."""
        shown = "localhost" if self.bind in {"127.0.0.1", "0.0.0.0", "", "::"} else self.bind
        return f"{shown}:{self.grpc_port}"

    async def start(self) -> Sidecar:
        """Bind the gRPC port, start the host (storage, hub lease, HTTP API), then serve gRPC."""
        try:
            options = [
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
                ("grpc.so_reuseport", 0),
            ]
            self._server = grpc.aio.server(options=options)
            try:
                bound = self._server.add_insecure_port(f"{self.bind}:{self.grpc_port}")
            except RuntimeError as exc:
                raise PortBusy(
                    f"gRPC port {self.grpc_port} on {self.bind} is in use or cannot be bound"
                ) from exc
            if not bound:
                raise PortBusy(f"gRPC port {self.grpc_port} on {self.bind} is in use or cannot be bound")
            self.grpc_port = bound
            await self.local.start()
            assert self.local.engine is not None
            stubs.add_TaskHubSidecarServiceServicer_to_server(
                SidecarService(self.local.engine, self.work, self.local.hub_name), self._server
            )
            await self._server.start()
        except BaseException:
            await self.stop()
            raise
        log.info(
            "Durable Task gRPC (TaskHubSidecarService): %s  task hub: %s", self.address, self.local.hub_name
        )
        return self

    async def stop(self) -> None:
        """Stop serving: streams end (their workers reconnect to the next run), the host stops."""
        if self._server is not None:
            await self._server.stop(grace=1.0)
            self._server = None
        await self.local.stop()

    async def __aenter__(self) -> Sidecar:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()
