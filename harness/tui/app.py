"""ChatApp: chat with a durable agent and inspect what its entity stored.

Panes: agents (from `/api/health`), sessions of the selected agent (newest first), orchestration
instances (newest first, refreshed periodically; Enter opens the instance inspector; ctrl+f the
hosted workflows, harness/tui/workflows.py), the chat of the
current session and an inspector tree of the stored state. The chat is re-rendered from the stored
history after every turn, so what you see is what the host persisted.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from textual import on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.reactive import reactive
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Header, Input, Label, ListItem, ListView, LoadingIndicator

from harness.client import AgentClient, ClientError, SessionSummary, agent_names
from harness.tui.diff import DiffScreen
from harness.tui.footer import KeysFooter
from harness.tui.fork import ChatLog, DiffRequested, ForkRequested, SessionList
from harness.tui.inspector import StateInspector
from harness.tui.instances import INSTANCE_REFRESH_SECONDS, InstanceItemLabel, InstanceScreen
from harness.tui.live import LiveReply
from harness.tui.screens import LogsScreen
from harness.tui.widgets import (
    EmptyChat,
    ErrorBubble,
    NoticeBubble,
    SessionItemLabel,
    UserBubble,
    history_widgets,
)
from harness.tui.workflows import WorkflowsScreen
from harness.workflow_graph import WorkflowGraph

SessionFilter = Callable[[SessionSummary], bool]


def json_key(value: Any) -> str:
    """A comparable form of a JSON value (to tell whether a listing changed)."""
    return json.dumps(value, sort_keys=True, default=str)


def new_session_id() -> str:
    """A fresh session key; chosen here (not by the app) so it is known before the first turn."""
    return uuid.uuid4().hex[:16]


NARROW_BELOW = 120


class ChatScreen(Screen[None]):
    """The app's main screen. Tab from the prompt goes to the chat above it (its turn cursor: `f`
    fork, `d` diff), then on round the other panes, and back to the prompt.

    Textual orders focus by position, top to bottom then left to right: the sidebar, the chat, the
    prompt, the inspector. Tab from the prompt then went round the inspector and the whole sidebar
    before it reached the chat, and looked as if it skipped it."""

    @property
    def focus_chain(self) -> list[Widget]:
        chain = super().focus_chain
        chat = next((widget for widget in chain if widget.id == "chat"), None)
        prompt = next((widget for widget in chain if widget.id == "prompt"), None)
        if chat is None or prompt is None:
            return chain
        # The chat with anything focusable in it (a reply's code block, say), in their order.
        moved = [widget for widget in chain if widget is chat or chat in widget.ancestors]
        rest = [widget for widget in chain if widget not in moved]
        after = rest.index(prompt) + 1
        return [*rest[:after], *moved, *rest[after:]]


CLOCK_STEPS = (("PT1H", "1 hour"), ("P1D", "1 day"), ("P7D", "7 days"))
"""The palette's moves of a virtual clock (any other: `python -m harness clock advance DURATION`)."""


class ChatApp(App[None]):
    """Chat TUI over an `AgentClient`; works with the local host, `func` or a deployed app."""

    CSS_PATH = "styles.tcss"
    TITLE = "durableagent"
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (NARROW_BELOW, "-wide")]
    """Below NARROW_BELOW columns the inspector starts hidden (ctrl+b shows it): beside the sidebar
    and the inspector, an 80-column terminal left the chat 13 columns."""

    BINDINGS = [
        Binding("ctrl+n", "new_session", "New"),
        Binding("ctrl+t", "reset_session", "Reset"),
        Binding("ctrl+y", "copy_session_id", "Copy id"),
        Binding("ctrl+g", "next_agent", "Agent"),
        Binding("ctrl+o", "focus_instances", "Instances"),
        # Not in the footer: at 80 columns it has no room left (the command palette lists it).
        Binding("ctrl+f", "show_workflows", "Workflows", show=False),
        Binding("ctrl+r", "refresh", "Refresh"),
        Binding("ctrl+l", "show_logs", "Logs"),
        Binding("ctrl+b", "toggle_inspector", "Inspector"),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    agent: reactive[str] = reactive("", init=False)
    busy: reactive[bool] = reactive(False, init=False)

    # Keys that act on the chat screen; on another screen (an instance, the logs) they are hidden
    # from the footer and do nothing, instead of changing the chat behind it.
    CHAT_ACTIONS = frozenset(
        {
            "new_session",
            "reset_session",
            "copy_session_id",
            "next_agent",
            "focus_instances",
            "show_workflows",
            "toggle_inspector",
        }
    )

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Chat keys only while the chat is the screen shown."""
        if action in self.CHAT_ACTIONS and len(self.screen_stack) > 1:
            return False
        return True

    def __init__(
        self,
        client: AgentClient,
        agent: str,
        logs: dict[str, Path] | None = None,
        *,
        session_id: str | None = None,
        show_volatile: bool = True,
        session_filter: SessionFilter | None = None,
        session_id_factory: Callable[[], str] = new_session_id,
        show_instances: bool = True,
        instances_every: float = INSTANCE_REFRESH_SECONDS,
        app_dir: Path | None = None,
        workflow_graphs: Mapping[str, WorkflowGraph] | None = None,
    ) -> None:
        """`show_volatile=False` hides times, correlation ids and the URL (stable snapshots);
        `session_filter` limits the sessions pane (tests sharing a store with other tests);
        `show_instances=False` leaves out the orchestration instances pane; `instances_every` is its
        refresh period in seconds (0: only on ctrl+r); `workflow_graphs` are the graphs the
        Workflows screen (ctrl+f) draws, else read from `app_dir` when it is first shown."""
        super().__init__()
        self.client = client
        self.logs = {name: Path(path) for name, path in (logs or {}).items()}
        self.show_volatile = show_volatile
        self.session_filter = session_filter
        self.session_id_factory = session_id_factory
        self.session_id: str = session_id or session_id_factory()
        self.agent_list: list[str] = []
        self.session_rows: list[SessionSummary] = []
        self.state: dict[str, Any] | None = None
        self.show_instances = show_instances
        self.instances_every = instances_every
        self.instance_rows: list[dict[str, Any]] = []
        self._instances_shown: list[tuple[Any, ...]] | None = None
        self.closing = False  # set by exit(): a worker finishing after it has nothing left to show
        self._chat_shown: tuple[str, str, int] | None = None  # (agent, session, messages) in the chat
        # The host's virtual clock as the header shows it ("2030-01-01T10:00:00Z (manual)"); None on
        # real time, where `_clock_real` stops asking (func and Azure have no clock route).
        self.virtual_now: str | None = None
        self._clock_real = False
        self.app_dir = app_dir
        self.workflow_graphs = workflow_graphs
        self.set_reactive(ChatApp.agent, agent)

    def exit(self, result: None = None, return_code: int = 0, message: Any = None) -> None:
        self.closing = True
        super().exit(result, return_code, message)

    # ---- layout -------------------------------------------------------------------------------

    def get_default_screen(self) -> Screen[None]:
        return ChatScreen(id="_default")

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="sidebar"):
                agents = ListView(id="agents")
                agents.border_title = "Agents"
                yield agents
                sessions = SessionList(id="sessions")
                sessions.border_title = "Sessions"
                yield sessions
                if self.show_instances:
                    instances = ListView(id="instances")
                    instances.border_title = "Instances"
                    yield instances
            with Vertical(id="chat-pane"):
                chat = ChatLog(id="chat")
                chat.border_title = "Chat"
                yield chat
                with Horizontal(id="thinking"):
                    yield LoadingIndicator()
                    yield Label("thinking…")
                yield Input(placeholder="Message the agent (Enter to send)", id="prompt")
            inspector = StateInspector(show_volatile=self.show_volatile, id="inspector")
            inspector.border_title = "Stored state"
            yield inspector
        yield KeysFooter()

    def on_mount(self) -> None:
        self.sub_title = self._subtitle()
        self.query_one("#chat", VerticalScroll).anchor()
        self.query_one("#prompt", Input).focus()
        self.refresh_all()
        if self.show_instances and self.instances_every > 0:
            self.set_interval(self.instances_every, self.refresh_instances)

    async def on_unmount(self) -> None:
        await self.client.aclose()

    def _subtitle(self) -> str:
        title = f"{self.agent} @ {self.client.base_url}" if self.show_volatile else self.agent
        return f"{title} · virtual time {self.virtual_now}" if self.virtual_now else title

    def watch_agent(self) -> None:
        self.sub_title = self._subtitle()

    def watch_busy(self, busy: bool) -> None:
        self.query_one("#thinking").display = busy

    # ---- loading ------------------------------------------------------------------------------

    @work(exclusive=True, group="load")
    async def refresh_all(self) -> None:
        """Reload agents, sessions and the current session from the app."""
        await self._load_clock()
        await self._load_agents()
        await self._load_sessions()
        await self._load_session()
        await self._load_instances()

    async def _load_clock(self) -> None:
        """The virtual clock for the header (once real time is seen, never asked again)."""
        if self._clock_real:
            return
        try:
            state = await self.client.clock()
        except ClientError:
            state = {"mode": "real"}
        self._clock_real = state.get("mode") not in ("auto", "manual")
        self.virtual_now = None if self._clock_real else f"{state.get('now')} ({state.get('mode')})"
        self.sub_title = self._subtitle()

    @work(exclusive=True, group="clock")
    async def advance_clock(self, duration: str) -> None:
        """Move the virtual clock (palette), then show what it changed."""
        try:
            await self.client.move_clock(advance=duration)
        except ClientError as exc:
            self.notify(str(exc), title="Clock", severity="error")
            return
        self.refresh_all()

    async def _load_agents(self) -> None:
        try:
            self.agent_list = agent_names(await self.client.health())
        except ClientError as exc:
            self.agent_list = []
            await self._show_chat([ErrorBubble(str(exc), "cannot reach the app")])
            return
        view = self.query_one("#agents", ListView)
        await view.clear()
        await view.extend(ListItem(Label(name)) for name in self.agent_list)
        if self.agent in self.agent_list:
            view.index = self.agent_list.index(self.agent)

    async def _load_sessions(self) -> None:
        try:
            rows = await self.client.sessions(self.agent)
        except ClientError as exc:
            self.notify(str(exc), title="Sessions", severity="error")
            rows = []
        if self.session_filter is not None:
            rows = [row for row in rows if self.session_filter(row)]
        if not any(row.session_id == self.session_id for row in rows):
            rows.insert(0, SessionSummary(self.session_id, None, 0, "(new)"))
        self.session_rows = rows
        view = self.query_one("#sessions", SessionList)
        view.session_ids = [row.session_id for row in rows]
        await view.clear()
        await view.extend(
            ListItem(SessionItemLabel(row, row.session_id == self.session_id, self.show_volatile))
            for row in rows
        )
        view.index = next(i for i, row in enumerate(rows) if row.session_id == self.session_id)

    @work(exclusive=True, group="instances")
    async def refresh_instances(self) -> None:
        """Reload the instances pane (periodically, and after an action changed an instance)."""
        await self._load_clock()
        await self._load_instances()

    async def _load_instances(self) -> None:
        if not self.show_instances:
            return
        note = ""
        try:
            rows = await self.client.instances()
        except ClientError as exc:
            rows = []
            # 501: a host without orchestrations (the local host before them); 404: no Durable API.
            note = "no orchestrations on this host" if exc.status in (404, 501) else f"error: {exc}"
        shown = [
            (r.get("instanceId"), r.get("name"), r.get("runtimeStatus"), json_key(r.get("customStatus")))
            for r in rows
        ] + [("note", note)]
        if shown == self._instances_shown:
            return  # unchanged: keep the list (and its cursor) as it is
        self._instances_shown = shown
        self.instance_rows = rows
        view = self.query_one("#instances", ListView)
        index = view.index
        await view.clear()
        if rows:
            await view.extend(ListItem(InstanceItemLabel(row)) for row in rows)
            view.index = min(index or 0, len(rows) - 1)
        else:
            await view.append(ListItem(Label(note or "no instances yet", classes="muted"), disabled=True))

    async def _load_session(self, extra: Iterable[Widget] = ()) -> None:
        """Fetch the stored state of the current session and show it in the chat and inspector."""
        inspector = self.query_one(StateInspector)
        try:
            self.state = await self.client.state(self.agent, self.session_id)
        except ClientError as exc:
            self.state = None
            inspector.show_message(str(exc))
            await self._show_chat([ErrorBubble(str(exc), "cannot load the session"), *extra])
            self._chat_rebuilt(None)
            return
        history = (self.state or {}).get("conversation_history") or []
        widgets = history_widgets(history)
        await self._show_chat([*widgets, *extra] or [EmptyChat(self.session_id)])
        self._chat_rebuilt((self.agent, self.session_id, len(history)))
        inspector.show_state(self.session_id, self.state)

    def _chat_rebuilt(self, shown: tuple[str, str, int] | None) -> None:
        """Tell the chat's turn cursor whether the turns it shows changed (see ChatLog.rebuilt)."""
        chat = self.query_one(ChatLog)
        chat.rebuilt(shown is None or shown != self._chat_shown)
        self._chat_shown = shown

    async def _show_chat(self, widgets: list[Widget]) -> None:
        chat = self.query_one("#chat", VerticalScroll)
        await chat.remove_children()
        await chat.mount_all(widgets)
        chat.scroll_end(animate=False, immediate=True)

    # ---- chat ---------------------------------------------------------------------------------

    @on(Input.Submitted, "#prompt")
    async def send_message(self, event: Input.Submitted) -> None:
        message = event.value.strip()
        if not message:
            return
        if self.busy:
            self.notify("Still waiting for the previous reply…", severity="warning")
            return
        event.input.clear()
        self.busy = True
        chat = self.query_one("#chat", VerticalScroll)
        await chat.query(EmptyChat).remove()
        await chat.mount(UserBubble(message))
        chat.scroll_end(animate=False)
        self.run_turn(message)

    @work(exclusive=True, group="turn")
    async def run_turn(self, message: str) -> None:
        """Send one turn (in a worker so the UI stays live), show its reply as it streams, then
        show what the host stored."""
        try:
            await self._run_turn(message)
        except Exception:
            if self.closing:  # ctrl+q while the turn's last steps ran: its widgets are going away
                return
            raise

    async def _run_turn(self, message: str) -> None:
        extra: list[Widget] = []
        result: dict[str, Any] = {}
        live = LiveReply(self.query_one("#chat", VerticalScroll))
        try:
            async for event in self.client.stream_run(self.agent, message, self.session_id):
                if event.kind == "final":
                    result = event.data
                else:
                    await live.apply(event)
        except ClientError as exc:
            await live.clear()
            extra.append(ErrorBubble(str(exc), "request failed"))
        if result.get("status") == "accepted":
            extra.append(
                NoticeBubble("The turn is still running on the host; press ctrl+r to refresh later.")
            )
        try:
            await self._load_sessions()
            await self._load_session()
            if result.get("status") == "error" and not self._history_has_error(result.get("correlationId")):
                extra.append(ErrorBubble(str(result.get("error") or "the turn failed")))
            if extra:
                chat = self.query_one("#chat", VerticalScroll)
                await chat.query(EmptyChat).remove()
                await chat.mount_all(extra)
                chat.scroll_end(animate=False, immediate=True)
        finally:
            self.busy = False

    def _history_has_error(self, correlation_id: object) -> bool:
        """Whether the stored history already shows the failed turn (it normally does)."""
        history = (self.state or {}).get("conversation_history") or []
        return any(
            isinstance(e, dict)
            and e.get("status") == "error"
            and (correlation_id is None or e.get("correlation_id") == correlation_id)
            for e in history
        )

    # ---- selection ----------------------------------------------------------------------------

    @on(ListView.Selected, "#agents")
    def agent_selected(self, event: ListView.Selected) -> None:
        if event.index is not None and 0 <= event.index < len(self.agent_list):
            self.switch_agent(self.agent_list[event.index])

    @on(ListView.Selected, "#instances")
    def instance_selected(self, event: ListView.Selected) -> None:
        if event.index is not None and 0 <= event.index < len(self.instance_rows):
            self.open_instance(str(self.instance_rows[event.index].get("instanceId")))

    def open_instance(self, instance_id: str) -> None:
        """Show the instance inspector for `instance_id`."""
        self.push_screen(InstanceScreen(self.client, instance_id, self.show_volatile, self.instances_every))

    def open_agent_session(self, agent: str, session_id: str) -> None:
        """Open an agent session named in an orchestration's history (entity names are lower case)."""
        name = next((a for a in self.agent_list if a.lower() == agent.lower()), agent)
        while len(self.screen_stack) > 1:
            self.pop_screen()
        self.agent = name
        self.session_id = session_id
        self.refresh_all()
        self.query_one("#prompt", Input).focus()

    @on(ListView.Selected, "#sessions")
    def session_selected(self, event: ListView.Selected) -> None:
        if event.index is not None and 0 <= event.index < len(self.session_rows):
            self.open_session(self.session_rows[event.index].session_id)

    def switch_agent(self, agent: str) -> None:
        """Show `agent`, starting a new session for it."""
        if agent == self.agent:
            return
        self.agent = agent
        self.session_id = self.session_id_factory()
        self.refresh_all()

    def open_session(self, session_id: str) -> None:
        """Show an existing session of the current agent."""
        self.session_id = session_id
        self.refresh_sessions_and_chat()
        self.query_one("#prompt", Input).focus()

    @work(exclusive=True, group="load")
    async def refresh_sessions_and_chat(self) -> None:
        await self._load_sessions()
        await self._load_session()

    # ---- actions ------------------------------------------------------------------------------

    def action_new_session(self) -> None:
        """Start an empty session with a fresh id."""
        self.session_id = self.session_id_factory()
        self.refresh_sessions_and_chat()
        self.query_one("#prompt", Input).focus()

    def action_refresh(self) -> None:
        self.refresh_all()

    def action_copy_session_id(self) -> None:
        self.copy_to_clipboard(self.session_id)
        self.notify(f"Copied session id {self.session_id}", title="Clipboard")

    def action_next_agent(self) -> None:
        """Cycle to the next agent of the app."""
        if not self.agent_list:
            self.notify("No agents listed by the app", severity="warning")
            return
        index = self.agent_list.index(self.agent) if self.agent in self.agent_list else -1
        self.switch_agent(self.agent_list[(index + 1) % len(self.agent_list)])

    def action_reset_session(self) -> None:
        self.reset_session()

    @work(exclusive=True, group="load")
    async def reset_session(self) -> None:
        """Signal `reset` on the entity, then wait until the stored history is empty."""
        if self.busy:
            self.notify("Wait for the reply before resetting", severity="warning")
            return
        try:
            await self.client.reset(self.agent, self.session_id)
            for _ in range(20):  # the signal is processed asynchronously by the host
                state = await self.client.state(self.agent, self.session_id)
                if not (state or {}).get("conversation_history"):
                    break
                await asyncio.sleep(0.25)
        except ClientError as exc:
            self.notify(str(exc), title="Reset failed", severity="error")
            return
        self.notify(f"Session {self.session_id} reset")
        await self._load_sessions()
        await self._load_session()

    # ---- fork and diff ------------------------------------------------------------------------

    @on(ForkRequested)
    def fork_requested(self, event: ForkRequested) -> None:
        self.fork_at(event.turn)

    @work(exclusive=True, group="load")
    async def fork_at(self, turn: int) -> None:
        """Copy turns 1 to `turn` of the open session into a new session, then open that one."""
        if self.busy:
            self.notify("Wait for the reply before forking", severity="warning")
            return
        source = self.session_id
        try:
            result = await self.client.fork(self.agent, source, turn, self.session_id_factory())
        except ClientError as exc:
            self.notify(str(exc), title="Fork failed", severity="error")
            return
        self.session_id = str(result["sessionId"])
        if result.get("status") == "forked":
            self.notify(f"Forked turns 1-{turn} of {source} into {self.session_id}", title="Fork")
        else:
            self.notify(
                "The fork is accepted but not stored yet; press ctrl+r to refresh", severity="warning"
            )
        await self._load_sessions()
        await self._load_session()
        self.query_one("#prompt", Input).focus()

    @on(DiffRequested)
    def diff_requested(self, event: DiffRequested) -> None:
        other = event.other
        if other is None:
            origin = (self.state or {}).get("forked_from")
            other = origin.get("session_id") if isinstance(origin, dict) else None
            if not isinstance(other, str):
                self.notify(
                    "This session is not a fork; pick a session in the list and press d to compare",
                    severity="warning",
                )
                return
        if other == self.session_id:
            self.notify("Pick another session than the open one to compare", severity="warning")
            return
        # Back from the diff, typing goes to the prompt (not to the chat's turn cursor).
        self.push_screen(
            DiffScreen(self.client, self.agent, other, self.session_id),
            lambda _: self.query_one("#prompt", Input).focus(),
        )

    def action_show_logs(self) -> None:
        if not self.logs:
            self.notify("No log files: this app was attached with --url", severity="warning")
            return
        self.push_screen(LogsScreen(self.logs))

    def action_focus_instances(self) -> None:
        if not self.show_instances:
            self.notify("The instances pane is off", severity="warning")
            return
        self.query_one("#instances", ListView).focus()

    def action_show_workflows(self) -> None:
        """The Workflows screen: hosted workflows' instances, graphs, events and open requests."""
        screen = WorkflowsScreen(
            self.client,
            self.workflow_graphs,
            self.app_dir,
            show_volatile=self.show_volatile,
            refresh_every=self.instances_every,
        )
        self.push_screen(screen)

    def action_toggle_inspector(self) -> None:
        inspector = self.query_one(StateInspector)
        inspector.display = not inspector.display

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New session", "Start an empty session (ctrl+n)", self.action_new_session)
        yield SystemCommand("Reset session", "Clear the stored history (ctrl+t)", self.action_reset_session)
        yield SystemCommand(
            "Copy session id", "Copy the session id to the clipboard", self.action_copy_session_id
        )
        yield SystemCommand("Refresh", "Reload agents, sessions and state (ctrl+r)", self.action_refresh)
        yield SystemCommand(
            "Diff with fork source",
            "Compare this session with the one it was forked from (d in the chat; f there forks)",
            lambda: self.post_message(DiffRequested(None)),
        )
        if self.show_instances:
            yield SystemCommand(
                "Instances", "Go to the orchestration instances (ctrl+o)", self.action_focus_instances
            )
        yield SystemCommand(
            "Workflows",
            "Workflow instances, graphs, events and approvals (ctrl+f)",
            self.action_show_workflows,
        )
        yield SystemCommand("Show logs", "Tail of the host and Azurite logs (ctrl+l)", self.action_show_logs)
        if self.virtual_now is not None:
            for duration, words in CLOCK_STEPS:
                yield SystemCommand(
                    f"Advance clock {words}",
                    f"Move the virtual clock {duration} ahead; timers due on the way fire",
                    lambda duration=duration: self.advance_clock(duration),
                )
        yield SystemCommand(
            "Toggle inspector", "Show or hide the state tree (ctrl+b)", self.action_toggle_inspector
        )
        for name in self.agent_list:
            if name != self.agent:
                yield SystemCommand(
                    f"Switch agent: {name}", f"Chat with {name}", lambda name=name: self.switch_agent(name)
                )
