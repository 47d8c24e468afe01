"""`chaos`: the reliability run of `harness/chaos.py` (`tox -e chaos`); exit 1 if a claim fails."""

from __future__ import annotations

import argparse
from pathlib import Path

from .base import Command

PROBES = ("concurrency", "hostile", "kills", "orchestration", "two", "storage", "hung")
"""`--only` names: the first word of each probe's name in `harness.chaos`."""


def _chaos_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rounds", type=int, default=10, help="host kills during agent turns")
    parser.add_argument(
        "--orchestration-rounds", type=int, default=3, help="host kills during orchestrations"
    )
    parser.add_argument("--posts", type=int, default=30, help="concurrent posts to one session")
    parser.add_argument("--fuzz", type=int, default=400, help="random hostile requests")
    parser.add_argument("--seed", type=int, default=14, help="seed of every random choice")
    parser.add_argument("--only", nargs="+", choices=PROBES, default=None)
    parser.add_argument("--json", type=Path, help="also write the results to this file")
    parser.add_argument("--markdown", type=Path, help="also write the rows as a Markdown table")


def run_chaos(args: argparse.Namespace) -> int:
    """The run itself. Imported here, not above: it loads the Functions SDK for its hung-activity app,
    which no other command needs at start-up."""
    from harness.chaos import run

    return run(args)


CHAOS = Command(
    "chaos",
    "reliability run: host kills, storage outages, hostile input, concurrency (see `chaos --help`)",
    _chaos_arguments,
    run_chaos,
    description="A repeatable reliability run: kills, storage outages, hostile input and concurrency, "
    "with verdicts.",
)
