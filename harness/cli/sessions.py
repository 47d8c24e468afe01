"""`sessions`, `show` and `fork`: an agent's sessions on a running app, read (or copied) through its
HTTP routes; the agent name is checked first, so a typo is one line listing the app's agents."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from durableagent.state import turn_numbers
from harness.client import ClientError, SessionSummary, SyncAgentClient, check_agent, message_count
from harness.formatting import (
    clip,
    format_arguments,
    format_value,
    time_text,
    total_usage,
    usage_of,
    usage_text,
)

from .base import EXIT_NOT_COMPLETED, PROG, Command, UsageError, fail, print_json, stdout_console
from .options import positive_int, remote_options, session_id


def _sessions_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent", metavar="AGENT")
    remote_options(parser, True)
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _show_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent", metavar="AGENT")
    parser.add_argument("session", type=session_id, metavar="SESSION")
    remote_options(parser, True)
    parser.add_argument("--json", action="store_true", help="print the state JSON")


def _fork_arguments(parser: argparse.ArgumentParser) -> None:
    """`fork AGENT SESSION --turn N [--to ID]`: a new session holding the first N turns."""
    parser.add_argument("agent", metavar="AGENT")
    parser.add_argument("session", type=session_id, metavar="SESSION")
    parser.add_argument("--turn", type=positive_int, required=True, metavar="N", help="turns to copy")
    parser.add_argument(
        "--to",
        type=session_id,
        metavar="ID",
        default=None,
        help="id of the new session (default: a new one)",
    )
    remote_options(parser, True)
    parser.add_argument("--json", action="store_true", help="print the app's JSON answer")


def run_fork(args: argparse.Namespace) -> int:
    """Copy the first turns into a new session; exit 1 when the fork is accepted but not stored yet."""
    console = stdout_console()
    with app_client(args) as client:
        result = client.fork(args.agent, args.session, args.turn, args.to)
    if args.json:
        print_json(result)
    new = str(result.get("sessionId"))
    if result.get("status") != "forked":
        return fail(
            f"the fork into {new!r} is accepted but not stored yet; check with "
            f"`{PROG} show {args.agent} {new}`",
            EXIT_NOT_COMPLETED,
        )
    if not args.json:
        console.print(
            f"Forked turns 1-{args.turn} of [bold]{escape(args.session)}[/bold] into "
            f"[bold]{escape(new)}[/bold] ({result.get('message_count')} messages)"
        )
    return 0


def app_client(args: argparse.Namespace) -> SyncAgentClient:
    """A client for --url after checking the agent exists (one-line error listing the agents).

    `args.agent` becomes the app's spelling of the name (names match case-insensitively).
    """
    client = SyncAgentClient(args.url, key=args.key)
    try:
        args.agent = check_agent(args.agent, client.agents())
    except ClientError:
        client.close()
        raise
    return client


def _short_id(value: object, length: int = 8) -> str:
    """Long ids (uuid hex) cut to their first characters for tables; `--json` has them whole."""
    return clip(str(value or ""), length + 1)


def _tokens(usage: dict[str, int] | None) -> str:
    """`19 (12+7)`: total, then prompt + completion."""
    if not usage:
        return ""
    prompt, completion = usage.get("prompt_tokens", 0), usage.get("completion_tokens", 0)
    return f"{usage.get('total_tokens', 0)} ({prompt}+{completion})"


def summary_json(summary: SessionSummary) -> dict[str, Any]:
    """The JSON form of a session summary (camelCase like the app's own JSON)."""
    return {
        "sessionId": summary.session_id,
        "messageCount": summary.message_count,
        "lastOperationTime": summary.last_operation_time.isoformat() if summary.last_operation_time else None,
        "lastMessage": summary.last_message,
    }


def run_sessions(args: argparse.Namespace) -> int:
    """An agent's sessions, newest first, as a table or JSON."""
    console = stdout_console()
    with app_client(args) as client:
        rows = client.sessions(args.agent)
    if args.json:
        print(json.dumps([summary_json(row) for row in rows], indent=2))
        return 0
    if not rows:
        console.print(f"No sessions for {escape(args.agent)} yet.")
        return 0
    table = Table(title=f"Sessions of {escape(args.agent)} (newest first)", title_justify="left")
    table.add_column("Session", style="bold", no_wrap=True)
    table.add_column("Messages", justify="right", no_wrap=True)
    table.add_column("Last activity", no_wrap=True)
    table.add_column("Last message")
    for row in rows:
        preview = clip(row.last_message, 48)
        table.add_row(row.session_id, str(row.message_count), time_text(row.last_operation_time), preview)
    console.print(table)
    return 0


def run_show(args: argparse.Namespace) -> int:
    """One session's stored state as a table of its messages, or the state JSON."""
    console = stdout_console()
    with app_client(args) as client:
        state = client.state(args.agent, args.session)
    if state is None:
        raise UsageError(f"session {args.session!r} of agent {args.agent!r} not found")
    if args.json:
        print(json.dumps(state, indent=2, ensure_ascii=False))
        return 0
    console.print(state_table(args.agent, args.session, state))
    return 0


def state_table(agent: str, session: str, state: dict[str, Any]) -> Table:
    """The stored history as a table: one row per message with tool calls, status and tokens."""
    history = [e for e in state.get("conversation_history") or [] if isinstance(e, dict)]
    totals = usage_text(total_usage(history))
    table = Table(
        title=f"{escape(agent)} / {escape(session)}: {message_count(state)} messages, tokens {totals}",
        title_justify="left",
    )
    table.add_column("#", justify="right")
    table.add_column("Turn", justify="right")
    table.add_column("Time", no_wrap=True)
    table.add_column("Role", no_wrap=True)
    table.add_column("Content", ratio=1, min_width=20)
    table.add_column("Tokens", no_wrap=True)
    table.add_column("Correlation", style="dim", no_wrap=True)
    turns = turn_numbers(history)
    for index, entry in enumerate(history, start=1):
        content = Text()
        response = entry.get("agent_response") if isinstance(entry.get("agent_response"), dict) else {}
        for call in response.get("tool_calls") or []:
            if isinstance(call, dict):
                content.append(
                    f"🔧 {call.get('name')}({format_arguments(call.get('arguments'))})", style="yellow"
                )
                content.append(f" -> {format_value(call.get('error') or call.get('result', ''), 120)}\n")
        if entry.get("status") == "error":
            content.append(f"error: {entry.get('error') or 'the turn failed'}", style="bold red")
        else:
            content.append(str(entry.get("content") or ""))
        usage = usage_of(entry)
        starts_turn = index == 1 or turns[index - 1] != turns[index - 2]
        table.add_row(
            str(index),
            str(turns[index - 1]) if starts_turn else "",
            time_text(entry.get("timestamp"), "%H:%M:%S"),
            str(entry.get("role") or ""),
            content,
            _tokens(usage),
            _short_id(entry.get("correlation_id")),
        )
    return table


SESSIONS = Command(
    "sessions", "list an agent's sessions, newest first", _sessions_arguments, run_sessions, finds_app=True
)
SHOW = Command("show", "show the stored state of one session", _show_arguments, run_show, finds_app=True)
FORK = Command(
    "fork",
    "copy a session's first N turns (as `show` numbers them) into a new session",
    _fork_arguments,
    run_fork,
    finds_app=True,
)
