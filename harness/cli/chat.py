"""`chat` (the TUI on an agent) and `up` (the local stack until Ctrl-C): the two commands that keep a
stack others talk to, so both listen on 7071 when it is free, as `func` does."""

from __future__ import annotations

import argparse
import os
import time
from typing import TYPE_CHECKING

from harness.client import AgentClient, check_agent

from .base import Command, StartupFailed, stdout_console
from .local_stack import (
    agents_if_any,
    agents_of,
    attach_url,
    banner,
    check_agent_first,
    check_stack_args,
    make_stack,
    reject_stack_options,
    start_stack,
)
from .options import default_app, remote_options, stack_options

if TYPE_CHECKING:
    from harness.tui import ChatApp


def _chat_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent", metavar="AGENT")
    stack_options(parser)
    remote_options(parser, False)


def run_chat(args: argparse.Namespace) -> int:
    """Open the TUI on an agent, on a running app (--url) or on a stack started here."""
    console = stdout_console()
    from harness.tui import ChatApp

    app_dir = None  # the app whose workflow graphs the TUI draws: unknown behind --url
    if args.url:
        reject_stack_options(args)
    else:
        args.url = attach_url(args)
        app_dir = args.app if args.app is not None else default_app()[0]
    if args.url:
        agent = check_agent(args.agent, agents_of(args.url, args.key))
        return run_tui(ChatApp(AgentClient(args.url, key=args.key), agent, None, app_dir=app_dir))
    check_stack_args(args)
    check_agent_first(args)
    stack = make_stack(args)
    try:
        seconds = start_stack(stack)
        agents = agents_of(stack.url)
        banner(console, stack, seconds, agents, args.app_note)
        agent = check_agent(args.agent, agents)
        return run_tui(ChatApp(AgentClient(stack.url), agent, stack.log_paths, app_dir=stack.app_dir))
    finally:
        stack.stop()


def run_tui(app: ChatApp) -> int:
    """Run the TUI; SIGTERM or a closed terminal (SIGHUP) close it as ctrl+q does, so the terminal
    gets its screen and modes back and the stack stops after it, with the shell's 128+N exit code.

    Left to the stack's own handler, the process would die with the TUI still drawn and the terminal
    in the TUI's modes. A signal while the TUI's loop is not running goes to the handler before.
    """
    import asyncio
    import signal

    from harness.stack import STOP_SIGNALS

    def on_signal(signum: int, frame: object) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            before = previous[signum]
            if callable(before):
                before(signum, frame)
            elif before != signal.SIG_IGN:
                signal.signal(signum, signal.SIG_DFL)
                os.kill(os.getpid(), signum)
            return
        loop.call_soon_threadsafe(app.exit, None, 128 + signum)

    previous = {signum: signal.signal(signum, on_signal) for signum in STOP_SIGNALS}
    try:
        app.run()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    return app.return_code or 0


def run_up(args: argparse.Namespace) -> int:
    """Start the stack, print the banner, keep it running until Ctrl-C (or until a process dies)."""
    console = stdout_console()
    check_stack_args(args)
    stack = make_stack(args)
    try:
        seconds = start_stack(stack)
        banner(console, stack, seconds, agents_if_any(stack.url), args.app_note)
        console.print("[dim]Press Ctrl-C to stop.[/dim]")
        while stack.is_running():
            time.sleep(0.5)
        raise StartupFailed(f"a stack process exited; see {stack.host.log_path} and {stack.azurite.log_path}")
    except KeyboardInterrupt:
        console.print("[dim]Stopping...[/dim]")
        return 0
    finally:
        stack.stop()


CHAT = Command(
    "chat", "chat with an agent in the TUI (starts a local stack unless --url)", _chat_arguments, run_chat
)
UP = Command(
    "up", "start Azurite and a Functions host, print the URLs, wait for Ctrl-C", stack_options, run_up
)
