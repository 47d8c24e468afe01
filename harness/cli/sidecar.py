"""`sidecar`: the Durable Task gRPC protocol (`TaskHubSidecarService`) for standalone `durabletask`
workers and clients, on the local host's engine over Azurite, with the Durable HTTP API beside it.

Azurite's data lives in a workspace kept across runs (a per-user folder, or `--data DIR`; `--fresh`
for a throw-away one), so instances survive a stop; `--storage` uses storage that is already running
instead (no Azurite is started). Ports are checked before anything starts, so a busy one is one line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import signal
import sys
import tempfile
from functools import partial
from pathlib import Path

from harness.processes import StartupError, ensure_port_free, port_argument

from .base import Command, StartupFailed, UsageError
from .local_stack import check_data_dir

DEFAULT_GRPC_PORT = 8080  # the Durable Task Scheduler emulator's: clients set up for it connect unchanged


def _arguments(sub: argparse.ArgumentParser) -> None:
    sub.add_argument(
        "--grpc-port",
        type=partial(port_argument, allow_zero=True),
        default=DEFAULT_GRPC_PORT,
        help=f"port of the gRPC service (default {DEFAULT_GRPC_PORT}, the emulator's; 0: any free port)",
    )
    sub.add_argument(
        "--port",
        type=partial(port_argument, allow_zero=True),
        default=0,
        help="port of the Durable HTTP API, for the CLI and TUI (default: any free port)",
    )
    sub.add_argument(
        "--hub",
        default="default",
        help="task hub of calls that name none (default: default); a call's `taskhub` metadata names its own",
    )
    sub.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    where = sub.add_mutually_exclusive_group()
    where.add_argument(
        "--data", type=Path, metavar="DIR", help="workspace for Azurite's data and the logs (kept)"
    )
    where.add_argument("--fresh", action="store_true", help="start empty in a throw-away folder")
    where.add_argument(
        "--storage", metavar="CONNSTR", help="use this storage (a running Azurite); start no Azurite"
    )
    sub.add_argument(
        "--virtual-time",
        choices=("real", "auto", "manual"),
        default="real",
        help="the clock of timers, scheduled starts and signals: real (default), auto (jumps to the next "
        "timer whenever idle) or manual (moved by POST /admin/clock on each hub's HTTP API)",
    )
    sub.add_argument("--verbose", "-v", action="store_true")


def _check_hub(name: str) -> None:
    from harness.host.sidecar.router import HUB_RULE, hub_problem

    if hub_problem(name) is not None:
        raise UsageError(f"--hub {name!r}: a task hub name is {HUB_RULE}")


def run_sidecar(args: argparse.Namespace) -> int:
    """Check the options and ports, start Azurite (unless --storage), serve until Ctrl-C/SIGTERM."""
    _check_hub(args.hub)
    check_data_dir(args.data)
    try:
        for port, what in ((args.grpc_port, "the gRPC service"), (args.port, "the HTTP API")):
            if port:
                ensure_port_free(port, args.host, what=what)
    except StartupError as exc:
        raise StartupFailed(str(exc)) from None
    if args.grpc_port and args.grpc_port == args.port:
        raise UsageError("--grpc-port and --port must differ")
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    for noisy in ("azure", "aiohttp.access", "urllib3", "grpc"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if args.storage:
        return _serve(args, args.storage)
    return _with_azurite(args)


def _with_azurite(args: argparse.Namespace) -> int:
    from harness.azurite import Azurite
    from harness.workspace import Workspace, user_data_dir

    scratch = Path(tempfile.mkdtemp(prefix="durableagent-sidecar-")) if args.fresh else None
    workspace = Workspace(scratch or args.data or user_data_dir() / "sidecar", "--data" if args.data else "")
    try:
        workspace.acquire()
        azurite = Azurite(workspace.azurite_dir, log_path=workspace.logs_dir / "azurite.log")
        try:
            azurite.start()
            return _serve(args, azurite.connection_string, workspace.root)
        finally:
            azurite.stop()
    except StartupError as exc:
        raise StartupFailed(str(exc).splitlines()[0] if str(exc) else "Azurite did not start") from None
    finally:
        workspace.release()
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _serve(args: argparse.Namespace, storage: str, data: Path | None = None) -> int:
    from azure.core.exceptions import AzureError

    from harness.host.errors import AppLoadError
    from harness.host.sidecar.listen import PortBusy
    from harness.host.sidecar.server import Sidecar

    sidecar = Sidecar(
        storage=storage,
        grpc_port=args.grpc_port,
        port=args.port,
        host=args.host,
        hub=args.hub,
        time=args.virtual_time,
    )

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await sidecar.start()
        print(
            f"Sidecar ready: gRPC {sidecar.address} (task hub {args.hub!r}), "
            f"Durable HTTP API {sidecar.url}/runtime/webhooks/durabletask/"
            + (f", data in {data}" if data else ""),
            flush=True,
        )
        try:
            await stop.wait()
        finally:
            await sidecar.stop()

    try:
        asyncio.run(serve())
    except PortBusy as exc:
        raise StartupFailed(str(exc)) from None
    except AppLoadError as exc:  # the hub's lease held elsewhere, storage refusing its API version
        raise StartupFailed(str(exc)) from None
    except AzureError as exc:
        raise StartupFailed(f"storage: {(str(exc).splitlines() or [''])[0]}") from None
    except OSError as exc:
        raise StartupFailed(f"cannot start the sidecar: {exc}") from None
    return 0


SIDECAR = Command(
    "sidecar",
    "serve the Durable Task gRPC protocol for durabletask workers and clients (offline, durable)",
    _arguments,
    run_sidecar,
)
