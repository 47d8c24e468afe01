"""`host`: the local Functions host alone, with its own options (`python -m harness host --help`)."""

from __future__ import annotations

import argparse

from .base import EXIT_STARTUP, Command, fail, no_arguments


def run_host(args: argparse.Namespace) -> int:
    """Hand the words after `host` to the host's own parser. Imported here: the host loads the
    Functions SDK and its ASGI server, which the other commands never need."""
    try:
        from harness.host.server import main as host_main
    except ImportError as exc:
        return fail(f"the local host is not available: {exc}", EXIT_STARTUP)
    return host_main(args.argv)


HOST = Command(
    "host",
    "run the local Functions host (see `host --help`)",
    no_arguments,
    run_host,
    passthrough=True,
)
