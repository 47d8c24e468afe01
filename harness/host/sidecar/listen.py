"""A gRPC server for `TaskHubSidecarService`, bound before it serves: the sidecar's, and the one a
local host opens for a Durable Functions 2.x app's durable client (its binding's `rpcBaseUrl`)."""

from __future__ import annotations

import grpc

MAX_MESSAGE = 64 * 1024 * 1024  # bytes a gRPC message may have (a long history in one work item)


class PortBusy(OSError):
    """The gRPC port could not be bound."""


def grpc_server(bind: str, port: int) -> tuple[grpc.aio.Server, int]:
    """A gRPC server bound to `bind:port` (0: any free port), not started yet, and its port; PortBusy
    when the port cannot be bound. Messages up to MAX_MESSAGE (a long history in one work item)."""
    options = [
        ("grpc.max_receive_message_length", MAX_MESSAGE),
        ("grpc.max_send_message_length", MAX_MESSAGE),
        ("grpc.so_reuseport", 0),
    ]
    server = grpc.aio.server(options=options)
    try:
        bound = server.add_insecure_port(f"{bind}:{port}")
    except RuntimeError as exc:
        raise PortBusy(f"gRPC port {port} on {bind} is in use or cannot be bound") from exc
    if not bound:
        raise PortBusy(f"gRPC port {port} on {bind} is in use or cannot be bound")
    return server, bound
