"""Picking a turn to fork at, and a session to compare with: the chat's turn cursor and the sessions
list's diff key. They only say what the user picked (messages); the app forks and opens the diff.

In the chat (focus it with Tab or a click), up/down move a highlight from turn to turn, `f` forks the
session at the highlighted turn and `d` compares the session with the one it was forked from. In the
sessions list, `d` compares the highlighted session with the open one. Turns are numbered as the
CLI's `show` and `fork` number them (`durableagent.state.turn_numbers`).
"""

from __future__ import annotations

from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.widget import Widget
from textual.widgets import ListView


class ForkRequested(Message):
    """Fork the open session at `turn` (copy turns 1 to `turn` into a new session)."""

    def __init__(self, turn: int) -> None:
        super().__init__()
        self.turn = turn


class DiffRequested(Message):
    """Compare the open session with `other` (None: with the session it was forked from)."""

    def __init__(self, other: str | None) -> None:
        super().__init__()
        self.other = other


def turn_of(widget: Widget) -> int | None:
    turn = getattr(widget, "turn", None)
    return turn if isinstance(turn, int) else None


class ChatLog(VerticalScroll):
    """The chat's scroll area with a turn cursor, shown while it has focus."""

    BINDINGS = [
        Binding("up,k", "move(-1)", "Prev turn", show=False),
        Binding("down,j", "move(1)", "Next turn", show=False),
        Binding("f", "fork", "Fork", tooltip="Fork the session at the highlighted turn"),
        Binding("d", "diff", "Diff", tooltip="Compare the session with the one it was forked from"),
    ]

    selected_turn: int | None = None

    def turns(self) -> list[int]:
        return sorted({turn for child in self.children if (turn := turn_of(child)) is not None})

    def select(self, turn: int | None) -> None:
        """Highlight `turn` (None: nothing) and bring it into view."""
        self.selected_turn = turn
        first: Widget | None = None
        for child in self.children:
            chosen = turn is not None and turn_of(child) == turn
            child.set_class(chosen, "selected-turn")
            if chosen and first is None:
                first = child
                child.border_subtitle = f"turn {turn} · f fork · d diff"
            elif child.border_subtitle:
                child.border_subtitle = ""
        if first is not None:
            self.scroll_to_widget(first, animate=False)

    def on_focus(self) -> None:
        self._show_cursor()

    def _show_cursor(self) -> None:
        """Highlight the remembered turn, or the newest one when none is remembered."""
        turns = self.turns()
        if turns and self.selected_turn not in turns:
            self.select(turns[-1])
        elif self.selected_turn is not None:
            self.select(self.selected_turn)

    def rebuilt(self, other_turns: bool) -> None:
        """The chat was rebuilt from the stored session. `other_turns` (a new turn, another session):
        the remembered turn is stale, so the cursor goes to the newest turn, where the conversation
        is; otherwise it stays. Shown at once if the chat has focus (the new widgets lack it)."""
        if other_turns:
            self.selected_turn = None
        if self.has_focus:
            self._show_cursor()

    def on_blur(self) -> None:
        turn = self.selected_turn
        self.select(None)
        self.selected_turn = turn  # remembered for the next focus, not shown

    def action_move(self, step: int) -> None:
        turns = self.turns()
        if not turns:
            return
        at = turns.index(self.selected_turn) if self.selected_turn in turns else len(turns) - 1
        self.select(turns[max(0, min(len(turns) - 1, at + step))])

    def action_fork(self) -> None:
        if self.selected_turn is None or self.selected_turn not in self.turns():
            self.notify("No turn to fork at: the session has none yet", severity="warning")
            return
        self.post_message(ForkRequested(self.selected_turn))

    def action_diff(self) -> None:
        self.post_message(DiffRequested(None))


class SessionList(ListView):
    """The sessions pane; `d` compares the highlighted session with the open one."""

    BINDINGS = [Binding("d", "diff", "Diff", tooltip="Compare the highlighted session with the open one")]

    session_ids: list[str] = []
    """The listed sessions' ids, in list order (set by the app with the items)."""

    def action_diff(self) -> None:
        index = self.index
        if index is None or not 0 <= index < len(self.session_ids):
            return
        self.post_message(DiffRequested(self.session_ids[index]))
