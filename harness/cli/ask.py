"""`python -m harness ask AGENT MESSAGE`: one turn without the TUI, for scripts and CI.

With `--url` it talks to a running app; otherwise it starts the local stack on the app's workspace
(as `chat` and `up` do), so `--session ID` on a later call continues the same conversation. The
reply streams to stdout as the app makes it (Server-Sent Events; an app that does not stream answers
in one piece, shown the same way): a line per tool call once its result is in, the text as it grows;
the session id goes to stderr. `--json` waits for the whole reply and prints one JSON object. Every
failure is one line on stderr (a failed turn's error may add its detail, such as a replay's diff,
indented below it) and a non-zero exit: 2 for what the user can fix (unknown agent, bad
URL, no connection, a refused key), 1 for a turn that failed, did not finish in time, or a stack
that did not start.
"""

from __future__ import annotations

import argparse
import json
import sys
import textwrap
from dataclasses import dataclass, field
from typing import Any, TextIO

from harness.client import ClientError, SyncAgentClient, check_agent
from harness.formatting import format_arguments, format_value, usage_of
from harness.reply_stream import ReplyEvent

from .base import EXIT_NOT_COMPLETED, PROG, Command, UsageError, fail
from .local_stack import (
    attach_url,
    check_agent_first,
    check_stack_args,
    make_stack,
    reject_stack_options,
    start_stack,
)
from .options import remote_options, session_id, stack_options

__all__ = ["ASK", "LivePrinter", "Reply", "ask", "print_reply", "tool_call_line"]

STOPPING = "stopping: the host finishes the turn in progress first (Ctrl-C again to leave at once)"
"""Said on the first Ctrl-C of a turn on a local stack: the host's clean stop waits for the turn."""


@dataclass
class Reply:
    """One answered turn: the reply text and what the stored history says about it."""

    agent: str
    session_id: str
    correlation_id: str | None
    text: str
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    usage: dict[str, int] | None = None
    message_count: int | None = None
    started: bool = False
    """Whether `--session` named a session that did not exist, which this turn started."""

    def to_json(self) -> dict[str, Any]:
        """camelCase like the app's own JSON."""
        return {
            "agent": self.agent,
            "sessionId": self.session_id,
            "correlationId": self.correlation_id,
            "response": self.text,
            "toolCalls": self.tool_calls,
            "usage": self.usage,
            "messageCount": self.message_count,
        }


def _ask_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("agent", metavar="AGENT")
    parser.add_argument("message", metavar="MESSAGE")
    parser.add_argument(
        "--session", type=session_id, metavar="ID", help="continue this session (default: a new one)"
    )
    parser.add_argument("--json", action="store_true", help="print the reply as JSON")
    stack_options(parser)
    remote_options(parser, False)


class TurnFailed(Exception):
    """The app answered, but the turn did not give a reply (failed, or still running)."""


def ask(args: argparse.Namespace) -> int:
    """Run the `ask` command; returns the exit code."""
    live = None if args.json else LivePrinter(sys.stdout)
    try:
        if args.url:
            reject_stack_options(args)
        else:
            args.url = attach_url(args)
        if args.url:
            reply = _ask_app(args.url, args.key, args.agent, args.message, args.session, live)
        else:
            check_stack_args(args)
            check_agent_first(args)
            stack = make_stack(args)
            started = False
            try:
                start_stack(stack)
                started = True
                reply = _ask_app(stack.url, None, args.agent, args.message, args.session, live)
            except KeyboardInterrupt:
                if started:  # the turn was sent: the host's clean stop waits for it
                    if live is not None:
                        live.end_line()
                    print(f"{PROG}: {STOPPING}", file=sys.stderr, flush=True)
                raise
            finally:
                stack.stop()
    except TurnFailed as exc:
        summary, _, detail = str(exc).partition("\n")
        code = fail(summary, EXIT_NOT_COMPLETED)
        if detail.strip():  # e.g. a replay's diff of the request that departed: kept readable
            print(textwrap.indent(detail.rstrip(), "    "), file=sys.stderr)
        return code
    finally:
        if live is not None:
            live.end_line()
    print_reply(reply, as_json=args.json, streamed=live is not None and live.shown)
    return 0


class LivePrinter:
    """Shows a streamed turn on a terminal: the text as it grows, a `[tool]` line per call once its
    result is in (the same lines `print_reply` writes for a whole reply)."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.calls: dict[str, dict[str, Any]] = {}
        self.mid_line = False
        self.shown = False  # whether any of the reply came as chunks (an app may not stream)

    def show(self, event: ReplyEvent) -> None:
        """Write what one event adds."""
        self.shown = self.shown or event.kind in ("text", "tool_call", "tool_result")
        if event.kind == "text":
            text = str(event.data.get("text", ""))
            self.out.write(text)
            self.mid_line = not text.endswith("\n") if text else self.mid_line
        elif event.kind == "tool_call":
            self.calls[str(event.data.get("call_id"))] = dict(event.data)
        elif event.kind == "tool_result":
            call = {**self.calls.get(str(event.data.get("call_id")), {}), "result": event.data.get("result")}
            self._line(f"[tool] {tool_call_line(call)}")
        elif event.kind == "reset":
            self.calls.clear()
            self._line("[the host retried this turn after a crash; its reply starts over]")
        self.out.flush()

    def _line(self, text: str) -> None:
        self.end_line()
        self.out.write(text + "\n")

    def end_line(self) -> None:
        """End a line the text left open."""
        if self.mid_line:
            self.out.write("\n")
            self.out.flush()
            self.mid_line = False


def _ask_app(
    url: str,
    key: str | None,
    agent: str,
    message: str,
    session_id: str | None,
    live: LivePrinter | None = None,
) -> Reply:
    """Send the turn (streamed to `live` when given) and read its stored reply (for the tool calls
    and usage)."""
    with SyncAgentClient(url, key=key) as client:
        try:
            agent = check_agent(agent, client.agents())
            # A mistyped --session would otherwise start a conversation without a word about it.
            started = bool(session_id) and client.state(agent, session_id) is None
            if live is None:
                answer = client.run(agent, message, session_id)
            else:
                answer = {}
                for event in client.stream_run(agent, message, session_id):
                    live.show(event)
                    if event.kind == "final":
                        answer = event.data
        except ClientError as exc:
            if exc.status in (401, 403):
                given = "the key given with --key was refused" if key else "it needs a function key"
                raise UsageError(
                    f"{url} answered HTTP {exc.status}: {given}; pass the app's key with --key"
                ) from None
            raise
        session = str(answer.get("sessionId") or answer.get("session_id") or session_id or "")
        if answer.get("status") == "error":
            raise TurnFailed(
                f"the turn failed in session {session}: {answer.get('error') or 'no reason given'}"
            )
        if answer.get("status") == "accepted":
            raise TurnFailed(
                f"no reply in time in session {session}; the turn goes on: see "
                f"`python -m harness show {agent} {session}` or {answer.get('statusUrl')}"
            )
        correlation = answer.get("correlationId") or answer.get("correlation_id")
        reply = Reply(agent, session, correlation, str(answer.get("response") or ""), started=started)
        reply.message_count = answer.get("message_count")
        entry = _stored_reply(client.state(agent, session), correlation)
        if entry is not None:
            response = entry.get("agent_response") or {}
            reply.tool_calls = [c for c in response.get("tool_calls") or [] if isinstance(c, dict)]
            reply.usage = usage_of(entry)
    return reply


def _stored_reply(state: dict[str, Any] | None, correlation_id: Any) -> dict[str, Any] | None:
    """The history entry answering `correlation_id` (the newest reply when the app sent no id)."""
    history = (state or {}).get("conversation_history") or []
    for entry in reversed(history):
        if not isinstance(entry, dict) or not isinstance(entry.get("agent_response"), dict):
            continue
        if correlation_id is None or entry.get("correlation_id") == correlation_id:
            return entry
    return None


def tool_call_line(call: dict[str, Any]) -> str:
    """`name(arg=value) -> result` for one tool call (its error instead of a result when it failed)."""
    outcome = f"error: {call['error']}" if call.get("error") else format_value(call.get("result", ""), 200)
    return f"{call.get('name')}({format_arguments(call.get('arguments'))}) -> {outcome}"


def print_reply(reply: Reply, *, as_json: bool = False, streamed: bool = False) -> None:
    """The reply on stdout (JSON, or tool calls then text, unless `streamed` showed them already)
    and, as text, the session id on stderr."""
    if as_json:
        print(json.dumps(reply.to_json(), indent=2, ensure_ascii=False))
        return
    if not streamed:
        for call in reply.tool_calls:
            print(f"[tool] {tool_call_line(call)}")
        print(reply.text)
    new = "new: no session had this id; " if reply.started else ""
    print(f"session {reply.session_id} ({new}continue with --session {reply.session_id})", file=sys.stderr)


ASK = Command(
    "ask", "send one message and print the reply (starts a local stack unless --url)", _ask_arguments, ask
)
