"""`clock [advance DURATION | to TIME]`: read the local host's clock, or move a virtual one.

`python -m harness clock` prints where the clock stands, its mode (real, auto, manual) and the next
timer due; `clock advance PT72H` (an ISO-8601 duration) or `clock to 2030-01-01T00:00:00Z` moves a
host started with `--virtual-time` and returns once what came due on the way has run
(`docs/virtual-time.md`). The host checks the duration and time; its refusal (backwards, real time,
a bad duration) is printed as one line.
"""

from __future__ import annotations

import argparse
from typing import Any

from harness.client import SyncAgentClient

from .base import Command, UsageError, print_json, stdout_console
from .options import remote_options


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action",
        nargs="?",
        choices=("advance", "to"),
        help="advance DURATION (ISO-8601, e.g. PT72H, P8D) or to TIME (e.g. 2030-01-01T00:00:00Z)",
    )
    parser.add_argument("value", nargs="?", metavar="DURATION|TIME")
    remote_options(parser, True)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def run_clock(args: argparse.Namespace) -> int:
    """Show the clock, or move it and show where it stands afterwards."""
    if args.action is not None and not args.value:
        example = "PT72H" if args.action == "advance" else "2030-01-01T00:00:00Z"
        raise UsageError(f"clock {args.action} needs a value, e.g. clock {args.action} {example}")
    with SyncAgentClient(args.url, key=args.key) as client:
        if args.action == "advance":
            state = client.move_clock(advance=args.value)
        elif args.action == "to":
            state = client.move_clock(to=args.value)
        else:
            state = client.clock()
    if args.json:
        print_json(state)
    else:
        stdout_console().print(describe(state), highlight=False, markup=False)
    return 0


def describe(state: dict[str, Any]) -> str:
    """One line: `now 2030-01-01T10:00:00Z (virtual, manual; next timer 2030-01-02T09:00:00Z)`."""
    mode = state.get("mode")
    kind = "real time" if mode == "real" else f"virtual, {mode}"
    due = state.get("next_due")
    return f"now {state.get('now')} ({kind}" + (f"; next timer {due})" if due else ")")


CLOCK = Command(
    "clock",
    "show the local host's clock, or move a virtual one: clock advance PT72H | clock to TIME",
    _arguments,
    run_clock,
    finds_app=True,
)
