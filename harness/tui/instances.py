"""Orchestration instances in the TUI: list items, the instance inspector screen and its action forms.

The inspector shows what the Durable instance API returns (input, output, custom status and the
history as a timeline), the same data `python -m harness status --history` prints, so the two views
can be compared. The API does not say what a running instance waits for; its custom status (or an
unfired timer in its history) is the best hint there is, and is shown as such.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Header, Input, Label, Static

from durableagent.replay import BadHistory, CheckResult, check_run
from durableagent.replay.recorded import run_from
from harness.cli.options import default_app
from harness.client import AgentClient, ClientError, is_finished
from harness.formatting import (
    STATUS_STYLES,
    TimelineRow,
    clip,
    duration_text,
    format_value,
    local_time,
    parse_time,
    status_note,
    timeline,
)
from harness.tui.footer import KeysFooter

INSTANCE_REFRESH_SECONDS = 2.0


def status_text(status: dict[str, Any]) -> Text:
    """The runtime status word in its colour."""
    runtime = str(status.get("runtimeStatus") or "?")
    return Text(runtime, style=STATUS_STYLES.get(runtime, ""))


class InstanceItemLabel(Static):
    """Two lines for an instance in the sidebar: id, then orchestrator · status · what it waits for."""

    def __init__(self, status: dict[str, Any], width: int = 26) -> None:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(clip(str(status.get("instanceId") or "?"), width + 2), style="bold")
        text.append(f"\n  {clip(str(status.get('name') or ''), 14)} ", style="dim")
        text.append_text(status_text(status))
        note = status_note(status)
        if note:
            text.append(f"\n  {clip(note, width)}", style="italic dim")
        super().__init__(text)


class InstanceScreen(Screen[None]):
    """The instance inspector: status fields and the history timeline, refreshed while it runs."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("e", "raise_event", "Raise event"),
        Binding("t", "terminate", "Terminate"),
        Binding("p", "purge", "Purge"),
        Binding("o", "open_agent", "Open session", tooltip="Open the session of the agent call"),
        # Not in the footer (at 80 columns it would push Refresh and Quit off); docs/replay.md names it.
        Binding("c", "replay_check", "Replay check", show=False),
        Binding("r", "reload", "Refresh"),
    ]

    def __init__(
        self,
        client: AgentClient,
        instance_id: str,
        show_volatile: bool = True,
        refresh_every: float = INSTANCE_REFRESH_SECONDS,
    ) -> None:
        super().__init__()
        self.client = client
        self.instance_id = instance_id
        self.show_volatile = show_volatile
        self.refresh_every = refresh_every
        self.status: dict[str, Any] | None = None
        self.rows: list[TimelineRow] = []
        self._shown: str | None = None
        # The timeline row of the first event the app's current code no longer replays (replay check).
        self.diverged_at: int | None = None

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="instance-pane"):
            details = Static(id="instance-details")
            details.border_title = f"Instance {self.instance_id}"
            yield details
            table: DataTable[Any] = DataTable(id="timeline", cursor_type="row", zebra_stripes=True)
            table.border_title = "History (o on an agent call opens its session)"
            yield table
        yield KeysFooter()

    def on_mount(self) -> None:
        table = self.query_one("#timeline", DataTable)
        columns = (
            ["Time", "Took", "Kind", "What", "Detail"]
            if self.show_volatile
            else ["Took", "Kind", "What", "Detail"]
        )
        table.add_columns(*columns)
        self.reload()
        if self.refresh_every > 0:
            self.set_interval(self.refresh_every, self._tick)

    def _tick(self) -> None:
        if self.status is not None and not is_finished(self.status):
            self.reload()

    @work(exclusive=True, group="instance")
    async def reload(self) -> None:
        """Fetch the status with history and redraw what changed."""
        details = self.query_one("#instance-details", Static)
        try:
            status = await self.client.instance(self.instance_id, history=True)
        except ClientError as exc:
            details.update(Text(str(exc), style="bold red"))
            return
        if status is None:
            self.status = None
            details.update(Text(f"no instance {self.instance_id!r} (purged?)", style="dim"))
            self.query_one("#timeline", DataTable).clear()
            self.rows = []
            return
        self.status = status
        fingerprint = json.dumps(status, sort_keys=True, default=str)
        if fingerprint == self._shown:
            return
        self._shown = fingerprint
        details.update(self._details(status))
        self._fill_timeline(status.get("historyEvents"))

    def _details(self, status: dict[str, Any]) -> Text:
        text = Text()

        def line(label: str, value: Text | str, style: str = "") -> None:
            text.append(f"{label:<14}", style="bold cyan")
            text.append_text(value if isinstance(value, Text) else Text(value, style=style))
            text.append("\n")

        line("Orchestrator", str(status.get("name") or ""))
        line("Status", status_text(status))
        if self.show_volatile:
            line("Created", local_time(parse_time(status.get("createdTime"))))
            line("Updated", local_time(parse_time(status.get("lastUpdatedTime"))))
        line("Input", format_value(status.get("input"), 300))
        line("Custom status", format_value(status.get("customStatus"), 300))
        failed = status.get("runtimeStatus") == "Failed"
        line("Output", format_value(status.get("output"), 300), "bold red" if failed else "")
        note = status_note(status)
        if note and status.get("customStatus") is None:
            line("Waiting", note)
        text.rstrip()
        return text

    def _fill_timeline(self, history: Any) -> None:
        table = self.query_one("#timeline", DataTable)
        cursor = table.cursor_row
        table.clear()
        self.rows = timeline(history)
        for index, row in enumerate(self.rows):
            style = "red" if row.failed else ""
            what = Text(row.title, style=style or ("bold magenta" if row.agent_session else "bold"))
            if index == self.diverged_at:
                what = Text(f"≠ {row.title}", style="bold white on red")
            cells: list[Any] = [
                duration_text(row.duration),
                row.kind,
                what,
                Text(clip(row.detail, 80), style=style),
            ]
            if self.show_volatile:
                cells.insert(0, local_time(row.time, "%H:%M:%S"))
            table.add_row(*cells)
        if self.rows:
            table.move_cursor(row=min(cursor, len(self.rows) - 1))

    # ---- actions ------------------------------------------------------------------------------

    def selected_row(self) -> TimelineRow | None:
        table = self.query_one("#timeline", DataTable)
        index = table.cursor_row
        return self.rows[index] if 0 <= index < len(self.rows) else None

    def action_reload(self) -> None:
        self.reload()

    def action_open_agent(self) -> None:
        """Open the agent session of the selected agent call (or the only one) in the chat."""
        row = self.selected_row()
        if row is None or row.agent_session is None:
            calls = [r for r in self.rows if r.agent_session]
            if len(calls) != 1:
                self.notify("Select an agent call (an EntityCalled on @dafx-…) first", severity="warning")
                return
            row = calls[0]
        assert row.agent_session is not None
        agent, session = row.agent_session
        open_session = getattr(self.app, "open_agent_session", None)
        if open_session is not None:
            open_session(agent, session)

    def action_replay_check(self) -> None:
        self.replay_check()

    @work(group="instance-action")
    async def replay_check(self) -> None:
        """Replay this history against the app's current orchestrator code (`replay-check`) and mark
        the first event it diverges at. The app is the one the TUI's stack serves (`app_dir`, set by
        `chat`), else the current folder's."""
        if self.status is None:
            return
        app_dir = getattr(self.app, "app_dir", None) or default_app()[0]
        if app_dir is None:
            self.notify("No app folder to check against (run chat with --app)", severity="warning")
            return
        try:
            result = await asyncio.to_thread(_replay_check, Path(app_dir), self.status)
        except (RuntimeError, BadHistory) as exc:  # AppLoadError (a RuntimeError): the app did not load
            self.notify(str(exc), title="Replay check failed", severity="error")
            return
        self.diverged_at = None
        divergence = result.divergence
        if divergence is None:
            self.notify(f"The history replays against the code in {app_dir}", title="Replay check: ok")
        else:
            self.diverged_at = divergence.index
            self.notify(
                f"{divergence.reason} at history event {divergence.index}\n- history: {divergence.recorded}"
                f"\n+ code: {divergence.code}",
                title="Replay check: diverged",
                severity="error",
                timeout=30,
            )
        self._fill_timeline(self.status.get("historyEvents"))
        if self.diverged_at is not None and 0 <= self.diverged_at < len(self.rows):
            self.query_one("#timeline", DataTable).move_cursor(row=self.diverged_at)

    def action_raise_event(self) -> None:
        if self.status is not None and is_finished(self.status):
            self.notify("The instance has finished; it takes no more events", severity="warning")
            return

        def send(result: tuple[str, Any] | None) -> None:
            if result is not None:
                self.send_event(*result)

        self.app.push_screen(RaiseEventScreen(self.instance_id), send)

    @work(group="instance-action")
    async def send_event(self, name: str, data: Any) -> None:
        try:
            await self.client.raise_event(self.instance_id, name, data)
        except ClientError as exc:
            self.notify(str(exc), title="Raise event failed", severity="error")
            return
        self.notify(f"Raised {name} on {self.instance_id}")
        self.reload()

    def action_terminate(self) -> None:
        self.terminate()

    @work(group="instance-action")
    async def terminate(self) -> None:
        try:
            await self.client.terminate(self.instance_id, "terminated from the TUI")
        except ClientError as exc:
            self.notify(str(exc), title="Terminate failed", severity="error")
            return
        self.notify(f"Terminating {self.instance_id}")
        self.reload()

    def action_purge(self) -> None:
        def confirmed(yes: bool | None) -> None:
            if yes:
                self.purge()

        self.app.push_screen(ConfirmScreen(f"Purge instance {self.instance_id} and its history?"), confirmed)

    @work(group="instance-action")
    async def purge(self) -> None:
        try:
            await self.client.purge(self.instance_id)
        except ClientError as exc:
            self.notify(str(exc), title="Purge failed", severity="error")
            return
        self.notify(f"Purged {self.instance_id}")
        refresh = getattr(self.app, "refresh_instances", None)
        self.app.pop_screen()
        if refresh is not None:
            refresh()


def _replay_check(app_dir: Path, status: dict[str, Any]) -> CheckResult:
    """One served status replayed against the app in `app_dir` (run off the UI thread). The app is
    imported here, on first use: the TUI does not load the host's loader until then."""
    from harness.replay import folder_orchestrators

    return check_run(
        run_from(status, str(status.get("instanceId") or "instance")), folder_orchestrators(app_dir)
    )


def parse_event_form(name: str, data: str) -> tuple[str, Any]:
    """Check the raise-event form: a name, and JSON data (empty means null); ValueError says what is wrong."""
    name = name.strip()
    if not name:
        raise ValueError("the event needs a name")
    if any(ch in name for ch in "/?#") or any(ord(ch) < 32 for ch in name):
        raise ValueError("event names cannot contain / ? # or control characters")
    text = data.strip()
    if not text:
        return name, None
    try:
        return name, json.loads(text)
    except ValueError as exc:
        raise ValueError(f"data is not valid JSON: {exc}") from None


class RaiseEventScreen(ModalScreen[tuple[str, Any] | None]):
    """A form: event name and JSON data, validated before anything is sent."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, instance_id: str) -> None:
        super().__init__()
        self.instance_id = instance_id

    def compose(self) -> ComposeResult:
        with Vertical(id="event-dialog", classes="dialog") as dialog:
            dialog.border_title = f"Raise an event on {self.instance_id}"
            yield Label("Event name")
            yield Input(placeholder="e.g. Approval", id="event-name")
            yield Label("Data (JSON, empty for null)")
            yield Input(placeholder='e.g. {"approved": true}', id="event-data")
            yield Label("", id="event-error")
            with Horizontal(classes="buttons"):
                yield Button("Send", variant="primary", id="event-send")
                yield Button("Cancel", id="event-cancel")

    def on_mount(self) -> None:
        self.query_one("#event-name", Input).focus()

    @on(Input.Submitted)
    @on(Button.Pressed, "#event-send")
    def submit(self) -> None:
        try:
            result = parse_event_form(
                self.query_one("#event-name", Input).value, self.query_one("#event-data", Input).value
            )
        except ValueError as exc:
            self.query_one("#event-error", Label).update(Text(str(exc), style="bold red"))
            return
        self.dismiss(result)

    @on(Button.Pressed, "#event-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """Yes/no before something that cannot be undone (purge)."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm-dialog", classes="dialog") as dialog:
            dialog.border_title = "Confirm"
            yield Label(self.question)
            yield Label("y: yes · n: no", classes="hint")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
