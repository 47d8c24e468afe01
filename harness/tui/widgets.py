"""Chat widgets: message bubbles, tool-call cards and error notices, built from stored history."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widget import Widget
from textual.widgets import Label, Markdown, Static

from durableagent.state import turn_numbers
from harness.client import SessionSummary
from harness.formatting import clip, format_arguments, format_value, plain


class UserBubble(Static):
    """What the user typed, right-aligned-ish so turns read as a dialogue."""

    def __init__(self, content: str) -> None:
        super().__init__(Text(content), classes="bubble user")
        self.text = content
        self.border_title = "you"


class AssistantBubble(Vertical):
    """The agent's reply, rendered as Markdown."""

    def __init__(self, content: str, title: str = "agent") -> None:
        super().__init__(classes="bubble assistant")
        self.content = content
        self.border_title = title

    def compose(self) -> ComposeResult:
        yield Markdown(self.content or "*(empty reply)*")


class ToolCallCard(Vertical):
    """One tool call inline in the chat: name, arguments and result."""

    def __init__(self, call: dict[str, Any]) -> None:
        super().__init__(classes="tool-card")
        self.call = call
        self.border_title = f"🔧 {call.get('name') or 'tool'}"

    def compose(self) -> ComposeResult:
        yield Label(Text.assemble(("args   ", "bold"), format_arguments(self.call.get("arguments", {}))))
        if "error" in self.call and self.call["error"]:
            yield Label(Text.assemble(("error  ", "bold red"), format_value(self.call["error"])))
        else:
            yield Label(Text.assemble(("result ", "bold"), format_value(self.call.get("result", ""))))


class ErrorBubble(Static):
    """A failed turn or an HTTP error, said plainly in the chat."""

    def __init__(self, message: str, title: str = "turn failed") -> None:
        super().__init__(Text(message), classes="bubble error")
        self.text = message
        self.border_title = f"⚠ {title}"


class NoticeBubble(Static):
    """A neutral note (e.g. a turn still running after the app's timeout)."""

    def __init__(self, message: str) -> None:
        super().__init__(Text(message), classes="bubble notice")
        self.text = message


class EmptyChat(Static):
    """Placeholder for a session without messages."""

    def __init__(self, session_id: str | None) -> None:
        hint = "Type a message below and press Enter."
        text = f"New session {session_id}\n{hint}" if session_id else hint
        super().__init__(Text(text, justify="center"), classes="empty")


def history_widgets(history: list[dict[str, Any]]) -> list[Widget]:
    """Widgets for a stored conversation history, in order; each knows its `turn` (numbered as the
    CLI's `show` and `fork` number turns), so a turn can be picked in the chat."""
    widgets: list[Widget] = []
    entries = [entry for entry in history if isinstance(entry, dict)]
    for entry, turn in zip(entries, turn_numbers(entries), strict=True):
        first = len(widgets)
        _entry_widgets(entry, widgets)
        for widget in widgets[first:]:
            widget.turn = turn  # type: ignore[attr-defined]
    return widgets


def _entry_widgets(entry: dict[str, Any], widgets: list[Widget]) -> None:
    """Append the widgets of one stored entry."""
    role = entry.get("role")
    if role == "user":
        widgets.append(UserBubble(str(entry.get("content") or "")))
        return
    if entry.get("status") == "error":
        widgets.append(ErrorBubble(str(entry.get("error") or "the turn failed")))
        return
    response = entry.get("agent_response") if isinstance(entry.get("agent_response"), dict) else {}
    for call in response.get("tool_calls") or []:
        if isinstance(call, dict):
            widgets.append(ToolCallCard(call))
    content = entry.get("content") or response.get("text") or ""
    widgets.append(AssistantBubble(str(content), title=str(role or "agent")))


PREVIEW_WIDTH = 26


class SessionItemLabel(Static):
    """Two lines for a session in the sessions pane: id and message count / preview."""

    def __init__(self, summary: SessionSummary, current: bool = False, show_time: bool = True) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append("● " if current else "  ", style="bold green")
        text.append(summary.session_id, style="bold")
        text.append(f"\n  {summary.message_count} msg", style="dim")
        if show_time and summary.last_operation_time is not None:
            text.append(f" · {summary.last_operation_time.astimezone():%m-%d %H:%M}", style="dim")
        if summary.last_message:
            text.append(f"\n  {clip(plain(summary.last_message), PREVIEW_WIDTH)}", style="italic dim")
        super().__init__(text)
