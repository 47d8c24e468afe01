"""Two sessions side by side from the turn where they part; the turns they share are one line.

Both histories are read from the app when the screen opens (what the host stored, as everywhere in
the TUI) and compared with `harness.session_diff`. Escape or q closes it.
"""

from __future__ import annotations

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Collapsible, Label, Static

from harness.client import AgentClient, ClientError
from harness.session_diff import SessionDiff, Turn, diff_sessions
from harness.tui.footer import KeysFooter

STYLES = {"user": "bold cyan", "tool": "yellow", "agent": "", "error": "bold red"}
LABELS = {"user": "you   ", "tool": "🔧    ", "agent": "agent ", "error": "error "}


def turn_text(turn: Turn) -> Text:
    text = Text(f"turn {turn.number}\n", style="bold")
    for kind, line in turn.lines():
        text.append(LABELS[kind], style="dim")
        text.append(f"{line}\n", style=STYLES[kind])
    return text


def shared_text(diff: SessionDiff) -> str:
    if diff.shared == 0:
        return "The sessions differ from turn 1."
    turns = "turn 1 is" if diff.shared == 1 else f"turns 1-{diff.shared} are"
    if diff.same:
        return f"Both sessions hold the same {diff.shared} turn(s): no difference."
    return f"{turns.capitalize()} the same in both (collapsed); they part at turn {diff.shared + 1}."


class DiffScreen(Screen[None]):
    """`left` and `right` sessions of `agent`; the shared prefix collapsed, the rest in two columns."""

    BINDINGS = [Binding("escape,q", "dismiss", "Close")]

    def __init__(self, client: AgentClient, agent: str, left: str, right: str) -> None:
        super().__init__()
        self.client = client
        self.agent = agent
        self.left = left
        self.right = right
        self.diff: SessionDiff | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="diff"):
            yield Label(Text.assemble(("Diff ", "bold"), f"{self.left}  ↔  {self.right}"), id="diff-title")
            yield Label("loading…", id="diff-shared")
            with Horizontal(id="diff-columns"):
                for side, session in (("left", self.left), ("right", self.right)):
                    column = VerticalScroll(id=f"diff-{side}", classes="diff-column")
                    column.border_title = session
                    yield column
        yield KeysFooter()

    def on_mount(self) -> None:
        self.load()

    @work(exclusive=True)
    async def load(self) -> None:
        try:
            left = await self.client.state(self.agent, self.left)
            right = await self.client.state(self.agent, self.right)
        except ClientError as exc:
            self.query_one("#diff-shared", Label).update(Text(str(exc), style="bold red"))
            return
        missing = [s for s, state in ((self.left, left), (self.right, right)) if state is None]
        if missing:
            self.query_one("#diff-shared", Label).update(
                Text(f"session {missing[0]!r} is not stored (no turns yet)", style="bold red")
            )
            return
        self.diff = diff_sessions(
            (left or {}).get("conversation_history"), (right or {}).get("conversation_history")
        )
        self.query_one("#diff-shared", Label).update(shared_text(self.diff))
        if self.diff.common:
            turns = Static(
                Text("\n").join(turn_text(turn) for turn in self.diff.common), classes="diff-common-turns"
            )
            shown = Collapsible(turns, title="the shared turns", collapsed=True, id="diff-common")
            await self.query_one("#diff").mount(shown, after="#diff-shared")
        for side, turns in (("left", self.diff.left), ("right", self.diff.right)):
            column = self.query_one(f"#diff-{side}", VerticalScroll)
            await column.remove_children()
            if turns:
                await column.mount_all(Static(turn_text(turn), classes="diff-turn") for turn in turns)
            else:
                await column.mount(Static(Text("(no more turns)", style="dim italic")))
