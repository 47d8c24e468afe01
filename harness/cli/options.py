"""The options several commands share, declared once: those that shape a local stack (`chat`, `up`,
`ask`) and those that name a running app (`--url`, `--key`, and `--app` to find the app's stack).

`chat`, `up` and `ask` start their stack on the app's workspace (`harness/workspace.py`: Azurite's
data and the logs, kept between runs), on `--data DIR`, or with `--fresh` on a throw-away folder;
`up` and `chat` listen on 7071 when it is free, as `func` does. Without `--url`, the commands that
talk to an app find the app's running stack through its workspace, then fall back to 7071.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.client import DEFAULT_PORT, DEFAULT_URL
from harness.processes import port_argument
from harness.stack import DEFAULT_APP_DIR, HOST_MODES
from harness.workspace import WORKSPACE_DIR, running_url

from .base import UsageError

VIRTUAL_TIME_MODES = ("auto", "manual")
"""`--virtual-time` (the host's own `harness/host/clock.py` knows them too; not imported here: the
host's package loads the Functions SDK, which commands that only parse their options never need)."""

__all__ = [
    "HOST_MODES",
    "VIRTUAL_TIME_MODES",
    "default_app",
    "positive_int",
    "remote_options",
    "running_url_for",
    "seconds",
    "session_id",
    "stack_options",
]


def stack_options(sub: argparse.ArgumentParser) -> None:
    """--app, --data/--fresh, --host, --script, --live, --record, --port, --virtual-time, --python:
    what a local stack runs."""
    sub.add_argument(
        "--app",
        type=Path,
        metavar="DIR",
        help="Functions app folder (default: the current folder if it has function_app.py, "
        "else the bundled weather sample)",
    )
    data = sub.add_mutually_exclusive_group()
    data.add_argument(
        "--data",
        type=Path,
        metavar="DIR",
        help=f"workspace folder for Azurite's data and the logs (default: APP/{WORKSPACE_DIR})",
    )
    data.add_argument(
        "--fresh",
        action="store_true",
        help="start empty in a throw-away folder removed at exit (the workspace is left alone)",
    )
    sub.add_argument("--host", dest="host_mode", choices=HOST_MODES, default="auto", help="Functions host")
    sub.add_argument(
        "--script",
        type=Path,
        metavar="FILE",
        help="fake-model script (default: the app's fake_model.json, else weather)",
    )
    sub.add_argument("--live", action="store_true", help="use the app's real model (AZURE_OPENAI_* env)")
    sub.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="with --live: record every model exchange to FILE (.json), a script --script replays",
    )
    sub.add_argument(
        "--port",
        type=port_argument,
        default=None,
        help=f"host port (default for up and chat: {DEFAULT_PORT} as with func, or a free port when "
        "it is taken; for ask: a free port)",
    )
    sub.add_argument(
        "--virtual-time",
        choices=VIRTUAL_TIME_MODES,
        default=None,
        help="run the local host on a virtual clock: auto (jumps to the next timer whenever the host is "
        "idle) or manual (moved by `clock advance`); default: real time",
    )
    sub.add_argument(
        "--python",
        metavar="PATH",
        default=None,
        help="run the app in this Python (Durable Functions 2.x apps need 3.13); default: the app's "
        ".venv when it holds azure-functions-durable 2.x, else the harness's own",
    )


def remote_options(sub: argparse.ArgumentParser, find_app: bool) -> None:
    """--url/--key; with `find_app`, also --app: without --url, the command talks to the stack
    running for the app (found through its workspace), else to the default URL."""
    if find_app:
        where = sub.add_mutually_exclusive_group()
        where.add_argument(
            "--url",
            default=None,
            help=f"URL of a running app (default: the stack running for --app, else {DEFAULT_URL})",
        )
        where.add_argument(
            "--app",
            type=Path,
            metavar="DIR",
            help="app folder whose running stack to talk to (default: the current folder if it has "
            "function_app.py, else the bundled weather sample)",
        )
    else:
        sub.add_argument("--url", default=None, help="URL of a running app")
    sub.add_argument("--key", default=None, help="function key (sent as x-functions-key)")


def positive_int(text: str) -> int:
    """A count the user gives (`--turn`, `--top`): a whole number of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected at least 1, got {value}")
    return value


def session_id(text: str) -> str:
    """An empty id would name the agent's session list instead of a session (or a new session)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("a session id must not be empty")
    return text


def seconds(text: str) -> float:
    """A wait in seconds: positive and finite (`--wait inf` would never end)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, got {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def default_app() -> tuple[Path | None, str]:
    """The app `--app` defaults to, and why: the current folder when it holds an app, else the sample."""
    here = Path.cwd()
    if (here / "function_app.py").is_file():
        return here, "the current folder"
    if (DEFAULT_APP_DIR / "function_app.py").is_file():
        return DEFAULT_APP_DIR, "the bundled weather sample: no function_app.py in the current folder"
    return None, ""


def running_url_for(app: Path | None) -> str | None:
    """The URL of the stack running for `app` (default: as `--app` defaults), None when none runs."""
    if app is None:
        app = default_app()[0]
    elif not app.is_dir():
        raise UsageError(f"app folder {app} does not exist")
    return running_url(app) if app is not None else None
