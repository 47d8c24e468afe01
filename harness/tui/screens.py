"""Modal screens: the tail of the host / Azurite log files."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label, Log, TabbedContent, TabPane

from harness.processes import tail

TAIL_LINES = 300


def log_lines(path: Path, lines: int = TAIL_LINES) -> list[str]:
    """The last `lines` lines of a log file; a one-line note when it cannot be read."""
    try:
        text = tail(path, lines, missing_ok=False)
    except OSError as exc:
        return [f"(cannot read {path}: {exc.strerror or exc})"]
    return text.split("\n") if text else []


class LogsScreen(ModalScreen[None]):
    """One tab per log file, scrolled to the end; Escape closes."""

    BINDINGS = [Binding("escape,q", "app.pop_screen", "Close")]

    def __init__(self, logs: dict[str, Path]) -> None:
        super().__init__()
        self.logs = logs

    def compose(self) -> ComposeResult:
        with Vertical(id="logs-dialog") as dialog:
            dialog.border_title = "Logs (Esc to close)"
            with TabbedContent():
                for index, (name, path) in enumerate(self.logs.items()):
                    with TabPane(name, id=f"log-{index}"):
                        yield Label(str(path), classes="log-path")
                        yield Log(id=f"log-view-{index}", highlight=False)

    def on_mount(self) -> None:
        for index, path in enumerate(self.logs.values()):
            self.query_one(f"#log-view-{index}", Log).write_lines(log_lines(Path(path)))
