"""`python -m harness`: the registry of commands, the parser built from it, and the one dispatch.

A new command is a `Command` (name, help, `add_arguments`, `run`) in its own module, added to
`COMMANDS`; `main` gives every command the same treatment: `--url` found for the commands that talk
to an app, expected failures as one line and an exit code (`base.py`), Ctrl-C as 130 and a reader
that left as 141, never a traceback.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from harness.client import DEFAULT_URL, ClientError

from .ask import ASK
from .base import (
    EXIT_BROKEN_PIPE,
    EXIT_INTERRUPTED,
    EXIT_STARTUP,
    EXIT_USAGE,
    PROG,
    Command,
    OneLineParser,
    StartupFailed,
    UsageError,
    fail,
)
from .bench import BENCH
from .chaos import CHAOS
from .chat import CHAT, UP
from .clock import CLOCK
from .host import HOST
from .instances import INSTANCE_COMMANDS
from .mcp import MCP
from .options import running_url_for
from .replay import REPLAY_CHECK
from .rewind import REWIND_TO
from .sessions import FORK, SESSIONS, SHOW
from .sidecar import SIDECAR
from .transfer import EXPORT, IMPORT
from .workflow import WORKFLOW

COMMANDS: tuple[Command, ...] = (
    CHAT,
    UP,
    ASK,
    HOST,
    CLOCK,
    SIDECAR,
    BENCH,
    CHAOS,
    SESSIONS,
    SHOW,
    FORK,
    MCP,
    *INSTANCE_COMMANDS,
    WORKFLOW,
    REPLAY_CHECK,
    EXPORT,
    IMPORT,
    REWIND_TO,
)
"""Every command, in the order `--help` lists them."""
BY_NAME = {command.name: command for command in COMMANDS}


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all commands (a passthrough command is listed; its words are its own)."""
    parser = OneLineParser(prog=PROG, description="Local development tools for durable agents.")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    subparsers.required = True
    for command in COMMANDS:
        sub = subparsers.add_parser(
            command.name,
            help=command.help,
            description=command.description,
            add_help=not command.passthrough,
        )
        command.add_arguments(sub)
    return parser


def parse(argv: Sequence[str]) -> argparse.Namespace:
    """The command line as the command's namespace; a passthrough command gets its words as `argv`."""
    words = list(argv)
    command = BY_NAME.get(words[0]) if words else None
    if command is not None and command.passthrough:
        return argparse.Namespace(command=command.name, argv=words[1:])
    return build_parser().parse_args(words)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = parse(sys.argv[1:] if argv is None else argv)
    command = BY_NAME[args.command]
    try:
        if command.finds_app and not args.url:
            args.url = running_url_for(args.app) or DEFAULT_URL
        return command.run(args)
    except (UsageError, ClientError) as exc:
        return fail(str(exc), EXIT_USAGE)
    except StartupFailed as exc:
        return fail(str(exc), EXIT_STARTUP)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`ask ... | head -1`): stop quietly, as `cat` does. Python would
        # otherwise fail again flushing stdout at exit, so what is left of it goes nowhere.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
