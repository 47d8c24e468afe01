"""The state inspector: the stored entity state of the session as a tree.

It shows what the host persisted, not what the chat pane rendered, so a mismatch between the two is
visible. Timestamps and correlation ids can be hidden (`show_volatile=False`) for stable snapshots.
"""

from __future__ import annotations

import json
from typing import Any

from rich.text import Text
from textual.binding import Binding
from textual.widgets import Tree
from textual.widgets.tree import NodeID, TreeNode

from durableagent.state import turn_numbers
from harness.formatting import (
    clip,
    format_arguments,
    format_value,
    one_line,
    parse_time,
    total_usage,
    usage_of,
    usage_text,
)
from harness.tui.fork import ForkRequested


class StateInspector(Tree[Any]):
    """Tree view of the entity state: messages, tool calls, usage per turn and in total."""

    BINDINGS = [Binding("f", "fork", "Fork", tooltip="Fork the session at the turn of this message")]

    def __init__(self, show_volatile: bool = True, **kwargs: Any) -> None:
        super().__init__("state", **kwargs)
        self._turns: dict[NodeID, int] = {}
        """The turn of each message node (numbered as everywhere: `turn_numbers`)."""
        self.show_volatile = show_volatile
        self.show_root = True
        self.guide_depth = 3

    def cursor_turn(self) -> int | None:
        """The turn of the message the cursor is on or inside, if any."""
        node = self.cursor_node
        while node is not None and node.id not in self._turns:
            node = node.parent
        return None if node is None else self._turns[node.id]

    def action_fork(self) -> None:
        turn = self.cursor_turn()
        if turn is None:
            self.notify("Put the cursor on a message to fork at its turn", severity="warning")
            return
        self.post_message(ForkRequested(turn))

    def show_message(self, message: str) -> None:
        """Replace the tree with a single line (no session yet, or an error)."""
        self.clear()
        self.root.set_label(Text(message, style="dim"))
        self.root.expand()

    def show_state(self, session_id: str, state: dict[str, Any] | None) -> None:
        """Rebuild the tree from a state document (None: the session has no stored state yet)."""
        self.clear()
        if state is None:
            self.root.set_label(
                Text.assemble(("session ", "dim"), (session_id, "bold"), (" · not stored yet", "dim"))
            )
            self.root.expand()
            return
        history = [e for e in state.get("conversation_history") or [] if isinstance(e, dict)]
        self.root.set_label(
            Text.assemble(("session ", "dim"), (session_id, "bold"), (f" · {len(history)} messages", "dim"))
        )
        self.root.data = state
        totals = total_usage(history)
        self.root.add_leaf(Text.assemble(("tokens (total) ", "bold"), usage_text(totals)), data=totals)
        info = self.root.add("entity", data=state, expand=False)
        for key in ("schema_version", "agent_type", "message_count", "last_response"):
            if key in state:
                info.add_leaf(Text.assemble((f"{key}: ", "bold"), one_line(format_value(state[key]), 60)))
        self._turns = {}
        for index, (entry, turn) in enumerate(zip(history, turn_numbers(history), strict=True), start=1):
            self._add_message(index, turn, entry)
        raw = self.root.add("raw JSON", data=state, expand=False)
        self._add_json(raw, state)
        self.root.expand()

    def _add_message(self, index: int, turn: int, entry: dict[str, Any]) -> None:
        role = str(entry.get("role") or "?")
        status = entry.get("status")
        label = Text.assemble(
            (f"#{index} ", "dim"), (role, "bold cyan" if role == "user" else "bold magenta")
        )
        if status == "error":
            label.append(" ✗ error", style="bold red")
        elif status:
            label.append(f" ✓ {status}", style="green")
        content_preview = one_line(str(entry.get("content") or ""), 36)
        if content_preview:
            label.append(" · ", style="dim")
            label.append(content_preview, style="italic")
        node = self.root.add(label, data=entry, expand=True)
        self._turns[node.id] = turn
        node.add_leaf(Text.assemble(("turn ", "bold"), str(turn)))
        content = entry.get("content")
        if isinstance(content, str) and content:
            node.add_leaf(Text.assemble(("content: ", "bold"), one_line(content, 120)), data=content)
        if status == "error":
            node.add_leaf(Text.assemble(("error: ", "bold red"), str(entry.get("error") or "")))
        response = entry.get("agent_response") if isinstance(entry.get("agent_response"), dict) else {}
        calls = [c for c in response.get("tool_calls") or [] if isinstance(c, dict)]
        if calls:
            calls_node = node.add(Text.assemble(("tool calls ", "bold"), f"({len(calls)})"), expand=True)
            for call in calls:
                self._add_tool_call(calls_node, call)
        usage = usage_of(entry)
        if usage is not None:
            node.add_leaf(Text.assemble(("tokens (turn) ", "bold"), usage_text(usage)), data=usage)
        messages = response.get("messages")
        if isinstance(messages, list) and messages:
            self._add_json(node.add(f"framework messages ({len(messages)})", expand=False), messages)
        if self.show_volatile:
            stamp = parse_time(entry.get("timestamp"))
            shown = (
                f"{stamp.astimezone():%Y-%m-%d %H:%M:%S %Z}" if stamp else str(entry.get("timestamp", "—"))
            )
            node.add_leaf(Text.assemble(("time: ", "bold"), shown))
            node.add_leaf(Text.assemble(("correlation_id: ", "bold"), str(entry.get("correlation_id", "—"))))

    def _add_tool_call(self, parent: TreeNode[Any], call: dict[str, Any]) -> None:
        name = str(call.get("name") or "tool")
        node = parent.add(
            Text.assemble(
                ("🔧 ", ""),
                (name, "bold yellow"),
                f"({one_line(format_arguments(call.get('arguments')), 40)})",
            ),
            data=call,
            expand=True,
        )
        arguments = call.get("arguments")
        if isinstance(arguments, dict) and arguments:
            args_node = node.add("arguments", expand=True)
            for key, value in arguments.items():
                args_node.add_leaf(Text.assemble((f"{key}: ", "bold"), format_value(value, 80)))
        elif arguments:
            node.add_leaf(Text.assemble(("arguments: ", "bold"), format_value(arguments, 80)))
        if call.get("error"):
            node.add_leaf(Text.assemble(("error: ", "bold red"), format_value(call["error"], 120)))
        else:
            node.add_leaf(Text.assemble(("result: ", "bold"), format_value(call.get("result", ""), 120)))
        if self.show_volatile and call.get("call_id"):
            node.add_leaf(Text.assemble(("call_id: ", "bold"), str(call["call_id"])))

    def _add_json(self, parent: TreeNode[Any], value: Any) -> None:
        """Nested JSON as collapsed branches (volatile fields kept: it is the raw view)."""
        if isinstance(value, dict):
            for key, item in value.items():
                if isinstance(item, dict | list) and item:
                    self._add_json(parent.add(Text(str(key), style="bold"), data=item, expand=False), item)
                else:
                    parent.add_leaf(
                        Text.assemble((f"{key}: ", "bold"), clip(json.dumps(item, default=str), 200))
                    )
        elif isinstance(value, list):
            for index, item in enumerate(value):
                if isinstance(item, dict | list) and item:
                    self._add_json(parent.add(f"[{index}]", data=item, expand=False), item)
                else:
                    parent.add_leaf(f"[{index}] {clip(json.dumps(item, default=str), 200)}")
        else:
            parent.add_leaf(clip(json.dumps(value, default=str), 200))
