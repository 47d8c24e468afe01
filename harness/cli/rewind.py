"""`rewind-to INSTANCE [N]`: a finished orchestration instance carries on from before history event N
with the app's code as it is now (without N: a Failed one from before the episode that failed, as the
extension's rewind does). The local host's `POST .../instances/{id}/rewind?toEvent=N` does it
(`harness/host/orchestrations/rewind.py`); N is the index in the stored history, as an export and
`replay-check` number it."""

from __future__ import annotations

import argparse
from urllib.parse import quote

import httpx

from harness.answers import raise_for, transport_error
from harness.client import DURABLE_PREFIX

from .base import Command, print_json
from .options import remote_options


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("instance", metavar="INSTANCE")
    parser.add_argument(
        "event",
        nargs="?",
        type=_event,
        metavar="N",
        help="carry on from before this history event (default: before the episode that failed)",
    )
    remote_options(parser, True)
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")


def _event(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a history event index, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or more, got {value}")
    return value


def _run(args: argparse.Namespace) -> int:
    params = {} if args.event is None else {"toEvent": str(args.event)}
    headers = {"x-functions-key": args.key} if args.key else {}
    path = f"{DURABLE_PREFIX}/instances/{quote(args.instance, safe='')}/rewind"
    try:
        response = httpx.post(args.url.rstrip("/") + path, params=params, headers=headers, timeout=60.0)
    except httpx.HTTPError as exc:
        raise transport_error(args.url, exc) from None
    raise_for(response)
    answer = {"instanceId": args.instance, "rewound": True, "toEvent": args.event}
    if args.json:
        print_json(answer)
    else:
        where = (
            "before the episode that failed" if args.event is None else f"before history event {args.event}"
        )
        print(f"Rewound {args.instance} to {where}: it runs on with the current code")
    return 0


REWIND_TO = Command(
    "rewind-to",
    "carry a finished instance on from an earlier history event with the current code",
    _arguments,
    _run,
    description="Rewind a finished orchestration instance on the local host: it carries on from before "
    "history event N (as an export and replay-check number it) with the app's current code; without N, "
    "a Failed instance from before the episode that failed.",
    finds_app=True,
)
