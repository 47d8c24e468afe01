"""`bench`: the benchmarks of `harness/bench.py` (`tox -e bench`); figures printed, never asserted."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness import bench
from harness.stack import DEFAULT_APP_DIR

from .base import Command
from .options import positive_int


def _bench_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--app", type=Path, default=DEFAULT_APP_DIR)
    parser.add_argument("--turns", type=int, default=200, help="turns for the latency figures")
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--session-turns", type=int, default=20)
    parser.add_argument("--history", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--samples", type=int, default=30, help="turns timed at each history size")
    parser.add_argument("--orchestration-runs", type=int, default=100, help="one-activity runs timed")
    parser.add_argument("--floor-writes", type=int, default=200, help="Azurite writes timed for the floor")
    parser.add_argument("--stream-turns", type=int, default=50, help="turns for the streaming figures")
    parser.add_argument(
        "--virtual-time-runs", type=int, default=5, help="72-hour timeouts and 7-day TTL expiries timed"
    )
    parser.add_argument("--mcp-turns", type=int, default=50, help="turns for the MCP tool call figures")
    parser.add_argument(
        "--purge", type=positive_int, default=1000, help="finished instances one purge by filter deletes"
    )
    parser.add_argument(
        "--listing",
        type=positive_int,
        nargs="+",
        default=[1000, 10000],
        help="session counts the listing is timed at (Azurite: 100,000 takes about an hour to write)",
    )
    parser.add_argument(
        "--listing-seeded",
        type=positive_int,
        nargs="*",
        default=[1000, 10000, 100000],
        help="session counts the listing is also timed at with the index rows seeded into Azurite's "
        "files (seconds for 100,000; none: skip)",
    )
    parser.add_argument("--suite", action="store_true", help="also time the whole test suite")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")


BENCH = Command(
    "bench", "run the benchmarks and print figures", _bench_arguments, bench.run, description=bench.__doc__
)
