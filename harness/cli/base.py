"""What every command shares: the `Command` record the registry holds, and the one way a command fails.

Every user error ends as one line on stderr and exit code 2 (argparse style); a stack that fails to
start ends as one line and exit code 1. No command prints a traceback for an expected failure: a
command raises `UsageError` or `StartupFailed` (or the client's `ClientError`) and `main` turns it
into that line, so the rule lives here once instead of in each command.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn

from rich.console import Console

PROG = "python -m harness"
EXIT_USAGE = 2
EXIT_STARTUP = 1
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
EXIT_NOT_COMPLETED = 1


class UsageError(Exception):
    """A user error: reported as one line, exit code 2."""


class StartupFailed(Exception):
    """The local stack did not start: reported as one line, exit code 1."""


class OneLineParser(argparse.ArgumentParser):
    """argparse, but errors are one line (no usage dump) so scripts can read them."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


@dataclass(frozen=True)
class Command:
    """One `python -m harness NAME ...` command, as the registry in `main.py` holds it.

    `add_arguments` declares its options on its own subparser; `run` gets the parsed namespace and
    returns the exit code. A command that `finds_app` talks to a running app: without `--url`, `main`
    points it at the stack running for `--app` (found through the app's workspace), else the default
    URL. A `passthrough` command parses its own arguments (`args.argv`, the words after its name): the
    local host has its own parser, shared with `python -m harness.host`.
    """

    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]
    description: str | None = None
    finds_app: bool = False
    passthrough: bool = False


def fail(message: str, code: int) -> int:
    """Print one line on stderr (no markup, no traceback) and return the exit code."""
    line = " ".join(message.split())
    print(f"{PROG}: error: {line}", file=sys.stderr)
    return code


def print_json(value: Any) -> None:
    """`--json` output: indented, non-ASCII kept as is."""
    print(json.dumps(value, indent=2, ensure_ascii=False))


def no_arguments(parser: argparse.ArgumentParser) -> None:
    """`add_arguments` of a passthrough command: its own parser declares them."""


def stdout_console() -> Console:
    """The console a command prints its tables on: lines are not wrapped (a pipe gets them whole)."""
    return Console(soft_wrap=False)
