"""The Workflows screen (ctrl+f in the chat, or the command palette): hosted agent-framework
Workflows, one instance at a time, as they run.

Left, the workflow instances (Durable instance API: orchestrators `dafx-{workflow}`, sub-workflow
children left out); in the middle, the selected instance's graph as agent-framework's `WorkflowViz`
sees it (harness/workflow_graph.py), drawn in text by distance from the start, each executor
coloured by its state in the instance's custom status, and below it what the selected executor
was given, what it gave and the tokens it used (from the events); right, the instance's event
timeline as the status route streams it, and the requests waiting for a person, answered in place
(`a`: a form built from the response type's JSON schema). `o` on an agent executor opens its
session in the chat (agent `{workflow}-{executor}`, session key the instance id).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, DataTable, Header, Input, Label, ListItem, ListView, Static, Switch

from harness.client import AgentClient, ClientError, is_finished
from harness.formatting import STATUS_STYLES, clip, format_value
from harness.tui.footer import KeysFooter
from harness.workflow_api import (
    EXECUTOR_STYLES,
    FINISHED,
    WorkflowEvent,
    describe_event,
    executor_records,
    executor_states,
    is_top_level,
    workflow_of,
)
from harness.workflow_graph import WorkflowGraph, app_workflows

WORKFLOW_REFRESH_SECONDS = 2.0
InstanceFilter = Callable[[dict[str, Any]], bool]
_IDS = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[0-9a-f]{32}")
KIND_NOTES = {"agent": "agent", "workflow": "sub-workflow", "executor": ""}
STATE_MARKS = {"running": "◐", "completed": "●", "failed": "✗", "waiting": "?", "idle": "○"}


def fallback_graph(name: str, status: dict[str, Any] | None) -> WorkflowGraph:
    """The executors an instance's custom status names, without edges (an app reached only by URL:
    its graph is not served)."""
    executors = {executor: "executor" for executor in executor_states(status)}
    start = next(iter(executors), "")
    return WorkflowGraph(name, start, executors)


def graph_lines(graph: WorkflowGraph, states: Mapping[str, str]) -> list[tuple[str, Text]]:
    """(executor, two-line drawing) per executor, by distance from the start: a mark and the name
    in the executor's state colour, its kind and state, then the edges it sends on."""
    rows: list[tuple[str, Text]] = []
    for depth, layer in enumerate(graph.layers()):
        for executor in layer:
            state = states.get(executor, "idle")
            style = EXECUTOR_STYLES.get(state, "")
            text = Text(no_wrap=True, overflow="ellipsis")
            indent = "  " * depth
            text.append(f"{indent}{STATE_MARKS.get(state, '○')} ", style=style)
            text.append(executor, style=f"{style} bold" if state != "idle" else "bold")
            kind = KIND_NOTES.get(graph.executors.get(executor, ""), "")
            shown_state = "" if state == "idle" else state
            notes = [note for note in (kind, "start" if executor == graph.start else "", shown_state) if note]
            if notes:
                text.append(f"  {' · '.join(notes)}", style="dim")
            groups: dict[str, list[str]] = {}
            for target, edge_kind in graph.targets(executor):
                groups.setdefault(edge_kind, []).append(target)
            for edge_kind, targets in groups.items():
                label = "" if edge_kind == "edge" else f" ({edge_kind})"
                text.append(f"\n{indent}  └─▶ {', '.join(targets)}{label}", style="dim")
            rows.append((executor, text))
    return rows


def _field_kind(schema: Mapping[str, Any]) -> str:
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    return str(kind or "json")


FIELD_HINTS = {"integer": "a whole number", "number": "a number", "string": ""}


def _default_text(default: Any) -> str:
    if default is None:
        return ""
    return default if isinstance(default, str) else json.dumps(default)


def parse_answer_form(schema: Mapping[str, Any] | None, values: Mapping[str, Any]) -> Any:
    """The answer a form gives, checked against the response type's JSON schema; ValueError says
    which field is wrong. Without properties in the schema the form is one JSON field, `value`."""
    properties = (schema or {}).get("properties")
    if not isinstance(properties, dict) or not properties:
        text = str(values.get("value") or "").strip()
        if not text:
            raise ValueError("the answer is empty; type it as JSON")
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ValueError(f"the answer is not valid JSON: {exc}") from None
    required = set((schema or {}).get("required") or [])
    answer: dict[str, Any] = {}
    for name, field_schema in properties.items():
        raw = values.get(name)
        kind = _field_kind(field_schema if isinstance(field_schema, dict) else {})
        if kind == "boolean":
            answer[name] = bool(raw)
            continue
        text = str(raw or "").strip()
        if not text:
            if name in required:
                raise ValueError(f"{name} is required")
            continue
        if kind == "string":
            answer[name] = str(raw)
        elif kind == "integer":
            try:
                answer[name] = int(text)
            except ValueError:
                raise ValueError(f"{name} must be a whole number, got {text!r}") from None
        elif kind == "number":
            try:
                answer[name] = float(text)
            except ValueError:
                raise ValueError(f"{name} must be a number, got {text!r}") from None
        else:
            try:
                answer[name] = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"{name} is not valid JSON: {exc}") from None
    return answer


class RespondScreen(ModalScreen[Any]):
    """A form for one open request: a field per property of the response type (a switch for a
    boolean, a text field otherwise), checked before anything is sent; dismissed with the answer."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]
    DEFAULT_CSS = """
    RespondScreen { align: center middle; }
    RespondScreen #respond-dialog { width: 72; height: auto; max-height: 90%; }
    RespondScreen .field-row { height: auto; }
    RespondScreen .field-row Label { width: 18; padding: 1 1 0 0; }
    RespondScreen .field-row Input { width: 1fr; }
    RespondScreen #respond-error { width: 1fr; height: auto; }
    RespondScreen #respond-request { color: $text-muted; height: auto; max-height: 8; }
    """

    def __init__(self, request: Mapping[str, Any], show_volatile: bool = True) -> None:
        super().__init__()
        self.request = dict(request)
        self.schema = (
            request.get("responseSchema") if isinstance(request.get("responseSchema"), dict) else None
        )
        self.show_volatile = show_volatile

    def _properties(self) -> dict[str, Any]:
        properties = (self.schema or {}).get("properties")
        return properties if isinstance(properties, dict) else {}

    def compose(self) -> ComposeResult:
        with Vertical(id="respond-dialog", classes="dialog") as dialog:
            dialog.border_title = (
                f"Answer {self.request.get('sourceExecutor')} ({self.request.get('responseType') or 'JSON'})"
            )
            yield Static(
                Text(f"asks: {format_value(self.request.get('requestData'), 400)}"), id="respond-request"
            )
            properties = self._properties()
            if not properties:
                with Horizontal(classes="field-row"):
                    yield Label("answer (JSON)")
                    yield Input(placeholder='e.g. {"approved": true}', id="field-value")
            required = set((self.schema or {}).get("required") or [])
            for name, field_schema in properties.items():
                field_schema = field_schema if isinstance(field_schema, dict) else {}
                kind = _field_kind(field_schema)
                label = f"{name}{' *' if name in required else ''}"
                with Horizontal(classes="field-row"):
                    yield Label(label)
                    if kind == "boolean":
                        yield Switch(value=bool(field_schema.get("default", False)), id=f"field-{name}")
                    else:
                        default = field_schema.get("default")
                        shown = (
                            ""
                            if default is None
                            else (default if isinstance(default, str) else json.dumps(default))
                        )
                        hint = {"integer": "a whole number", "number": "a number", "string": ""}.get(
                            kind, "JSON"
                        )
                        yield Input(value=shown, placeholder=hint, id=f"field-{name}")
            yield Label("", id="respond-error")
            with Horizontal(classes="buttons"):
                yield Button("Send", variant="primary", id="respond-send")
                yield Button("Cancel", id="respond-cancel")

    def on_mount(self) -> None:
        fields = self.query(".field-row Input, .field-row Switch")
        if fields:
            fields.first().focus()

    def values(self) -> dict[str, Any]:
        found: dict[str, Any] = {}
        for widget in self.query(".field-row Input, .field-row Switch"):
            name = str(widget.id or "")[len("field-") :]
            found[name] = widget.value  # type: ignore[attr-defined]
        return found

    def show_error(self, message: str) -> None:
        self.query_one("#respond-error", Label).update(Text(message, style="bold red"))

    @on(Input.Submitted)
    @on(Button.Pressed, "#respond-send")
    def submit(self) -> None:
        try:
            answer = parse_answer_form(self.schema, self.values())
        except ValueError as exc:
            self.show_error(str(exc))
            return
        self.dismiss(answer)

    @on(Button.Pressed, "#respond-cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)


class WorkflowsScreen(Screen[None]):
    """Workflow instances, the selected one's graph, events, executor detail and open requests."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("a", "answer", "Answer", tooltip="Answer the request waiting for a person"),
        Binding("o", "open_agent", "Open session", tooltip="Open the session of the agent executor"),
        Binding("t", "terminate", "Terminate"),
        Binding("r", "reload", "Refresh"),
    ]
    DEFAULT_CSS = """
    WorkflowsScreen #wf-main { height: 1fr; }
    WorkflowsScreen #wf-instances { width: 30; border: round $primary 50%; }
    WorkflowsScreen #wf-instances > ListItem { padding: 0 0 1 0; }
    WorkflowsScreen #wf-middle { width: 2fr; min-width: 36; }
    WorkflowsScreen #wf-graph { height: 1fr; border: round $primary 50%; }
    WorkflowsScreen #wf-graph > ListItem { padding: 0 1; }
    WorkflowsScreen #wf-executor { height: auto; max-height: 14; border: round $primary 50%; padding: 0 1; }
    WorkflowsScreen #wf-right { width: 3fr; min-width: 48; }
    WorkflowsScreen #wf-events { height: 1fr; border: round $primary 50%; }
    WorkflowsScreen #wf-pending { height: auto; max-height: 10; border: round $primary 50%; padding: 0 1; }
    WorkflowsScreen #wf-instances:focus-within, WorkflowsScreen #wf-graph:focus-within,
    WorkflowsScreen #wf-events:focus { border: round $accent; }
    """

    def __init__(
        self,
        client: AgentClient,
        graphs: Mapping[str, WorkflowGraph] | None = None,
        app_dir: Path | None = None,
        *,
        show_volatile: bool = True,
        refresh_every: float = WORKFLOW_REFRESH_SECONDS,
        instance_filter: InstanceFilter | None = None,
    ) -> None:
        """`graphs`: the app's workflow graphs (else read from `app_dir` on first show, else drawn
        from each instance's custom status); `instance_filter` limits the list (tests sharing a
        host); `show_volatile=False` hides times and generated ids (stable snapshots)."""
        super().__init__()
        self.client = client
        self.graphs: dict[str, WorkflowGraph] | None = dict(graphs) if graphs is not None else None
        self.app_dir = app_dir
        self.show_volatile = show_volatile
        self.refresh_every = refresh_every
        self.instance_filter = instance_filter
        self.rows: list[dict[str, Any]] = []
        self._rows_shown: list[tuple[Any, ...]] | None = None
        self.selected: tuple[str, str] | None = None  # (workflow, instance id)
        self.status: dict[str, Any] | None = None
        self.drawn: dict[str, Any] | None = None  # the status the graph and the boxes show
        self.events: list[WorkflowEvent] = []
        self.updates: list[WorkflowEvent] = []  # agent_update: agents' text as it streams
        self.received: list[WorkflowEvent] = []  # both, in the order they came
        self._cursor: int | str = -1  # the last event's id, to resume after
        self.executor_ids: list[str] = []
        self.executor: str | None = None
        self._status_shown: str | None = None

    # ---- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="wf-main"):
            instances = ListView(id="wf-instances")
            instances.border_title = "Workflow instances"
            yield instances
            with Vertical(id="wf-middle"):
                graph = ListView(id="wf-graph")
                graph.border_title = "Graph"
                yield graph
                executor = Static(id="wf-executor")
                executor.border_title = "Executor"
                yield executor
            with Vertical(id="wf-right"):
                table: DataTable[Any] = DataTable(id="wf-events", cursor_type="row", zebra_stripes=True)
                table.border_title = "Events"
                yield table
                pending = Static(id="wf-pending")
                pending.border_title = "Waiting for a person"
                yield pending
        yield KeysFooter()

    def on_mount(self) -> None:
        table = self.query_one("#wf-events", DataTable)
        table.add_columns("#", "", "What", "Detail")
        self.query_one("#wf-pending", Static).display = False
        self.reload()
        if self.refresh_every > 0:
            self.set_interval(self.refresh_every, self._tick)

    def _tick(self) -> None:
        self.load_instances()
        if self.status is not None and self.status.get("runtimeStatus") not in FINISHED:
            self.load_status()

    # ---- instances ------------------------------------------------------------------------------

    def _workflow_rows(self, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
        known = {name.lower() for name in self.graphs} if self.graphs is not None else None
        chosen = []
        for row in rows:
            name = workflow_of(row)
            if name is None or not is_top_level(row):
                continue
            if known is not None and name.lower() not in known:
                continue
            if self.instance_filter is not None and not self.instance_filter(row):
                continue
            chosen.append(row)
        return chosen

    @contextlib.contextmanager
    def _unless_gone(self) -> Iterator[None]:
        """A worker whose screen was closed (esc, `o`, the app quitting) while it awaited the host:
        its widgets are gone, and so is the reason to draw them (the screen's own widgets are never
        missing otherwise)."""
        with contextlib.suppress(NoMatches):
            yield

    @work(exclusive=True, group="wf-reload")
    async def reload(self) -> None:
        """Graphs (once), the instance list, then the selected instance."""
        with self._unless_gone():
            if self.graphs is None and self.app_dir is not None:
                self.graphs = await asyncio.to_thread(app_workflows, self.app_dir)
                self.app_dir = None  # read once: an app that cannot say is not asked again
                if self.graphs is not None and getattr(self.app, "workflow_graphs", False) is None:
                    self.app.workflow_graphs = self.graphs  # type: ignore[attr-defined]  # the next ctrl+f
            await self._load_instances()
            if self.selected is not None:
                await self._load_status()

    @work(exclusive=True, group="wf-instances")
    async def load_instances(self) -> None:
        with self._unless_gone():
            await self._load_instances()

    async def _load_instances(self) -> None:
        view = self.query_one("#wf-instances", ListView)
        note = ""
        try:
            rows = self._workflow_rows(await self.client.instances())
        except ClientError as exc:
            rows, note = [], f"error: {exc}"
        shown = [(r.get("instanceId"), r.get("runtimeStatus")) for r in rows] + [("note", note)]
        if shown == self._rows_shown:
            return
        self._rows_shown = shown
        same = [r.get("instanceId") for r in rows] == [r.get("instanceId") for r in self.rows]
        self.rows = rows
        items = list(view.query(ListItem))
        if same and rows and len(items) == len(rows):
            # The same instances with new statuses: relabelled in place, the selection untouched.
            for item, row in zip(items, rows, strict=True):
                item.query_one(Static).update(self._instance_label(row))
            return
        index = view.index
        await view.clear()
        if not rows:
            await view.append(
                ListItem(Label(note or "no workflow instances yet", classes="muted"), disabled=True)
            )
            return
        await view.extend(ListItem(Static(self._instance_label(row))) for row in rows)
        if self.selected is not None:
            ids = [str(r.get("instanceId")) for r in rows]
            index = ids.index(self.selected[1]) if self.selected[1] in ids else index
        view.index = min(index or 0, len(rows) - 1)
        if self.selected is None:
            self._select(rows[view.index or 0])

    def _instance_label(self, row: dict[str, Any]) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(clip(str(row.get("instanceId") or "?"), 26), style="bold")
        runtime = str(row.get("runtimeStatus") or "?")
        text.append(f"\n  {clip(workflow_of(row) or '', 18)} ", style="dim")
        text.append(runtime, style=STATUS_STYLES.get(runtime, ""))
        return text

    @on(ListView.Highlighted, "#wf-instances")
    def instance_highlighted(self, event: ListView.Highlighted) -> None:
        view = self.query_one("#wf-instances", ListView)
        if event.item is not view.highlighted_child:
            return  # posted during a rebuild of the list: the row it names is no longer highlighted
        index = view.index
        if index is not None and 0 <= index < len(self.rows):
            self._select(self.rows[index])

    def _select(self, row: dict[str, Any]) -> None:
        name, instance_id = workflow_of(row) or "", str(row.get("instanceId") or "")
        if self.selected == (name, instance_id):
            return
        self.selected = (name, instance_id)
        self.status, self.drawn, self.events, self.executor, self._status_shown = None, None, [], None, None
        self.updates, self.received, self._cursor = [], [], -1
        with self._unless_gone():
            self.query_one("#wf-events", DataTable).clear()
        self.load_status()
        self.follow_events()

    # ---- the selected instance ------------------------------------------------------------------

    def graph(self) -> WorkflowGraph | None:
        if self.selected is None:
            return None
        name = self.selected[0]
        for known, graph in (self.graphs or {}).items():
            if known.lower() == name.lower():
                return graph
        return fallback_graph(name, self.status)

    @work(exclusive=True, group="wf-status")
    async def load_status(self) -> None:
        with self._unless_gone():
            await self._load_status()

    async def _load_status(self) -> None:
        if self.selected is None:
            return
        name, instance_id = self.selected
        try:
            status = await self.client.workflow_status(name, instance_id)
        except ClientError as exc:
            self.query_one("#wf-executor", Static).update(Text(str(exc), style="bold red"))
            return
        if self.selected != (name, instance_id):
            return
        fingerprint = json.dumps(status, sort_keys=True, default=str)
        if fingerprint == self._status_shown:
            return
        self.status = status
        await self._draw_graph()
        self._draw_pending()
        self._draw_executor()
        self._status_shown = fingerprint  # only once drawn: a reload cancelled mid-way draws again
        self.drawn = status

    @work(exclusive=True, group="wf-events")
    async def follow_events(self) -> None:
        """The selected instance's events as the status route streams them, until its `status`."""
        if self.selected is None:
            return
        name, instance_id = self.selected
        try:
            with self._unless_gone():
                async for event in self.client.workflow_events(name, instance_id, after=self._cursor):
                    if self.selected != (name, instance_id) or not self.is_attached:
                        return
                    self._cursor = event.cursor or self._cursor
                    self.received.append(event)
                    if event.numbered:
                        self.events.append(event)
                        self._add_event(event)
                    else:  # an agent's streamed text: shown in the executor box, not as rows
                        self.updates.append(event)
                    self._draw_executor()
                    if event.kind in ("executor_completed", "executor_failed", "request_info", "status"):
                        self.load_status()
        except ClientError as exc:
            self.notify(str(exc), title="Events", severity="error")

    def _hide(self, text: str) -> str:
        return text if self.show_volatile else _IDS.sub("…", text)

    def _add_event(self, event: WorkflowEvent) -> None:
        table = self.query_one("#wf-events", DataTable)
        line = describe_event(event, 200)
        table.add_row(
            Text(str(event.id), style="dim"),
            Text(line.mark, style=line.style),
            Text(self._hide(line.subject), style=line.style or "bold"),
            Text(clip(self._hide(line.detail), 90)),
        )

    async def _draw_graph(self) -> None:
        view = self.query_one("#wf-graph", ListView)
        graph = self.graph()
        if graph is None:
            return
        states = executor_states(self.status)
        rows = graph_lines(graph, states)
        runtime = str((self.status or {}).get("runtimeStatus") or "")
        view.border_title = f"Graph: {graph.name}"
        view.border_subtitle = runtime
        index = view.index
        ids = [executor for executor, _ in rows]
        items = list(view.query(ListItem))
        if ids == self.executor_ids and len(items) == len(rows):
            # The same executors in new states: redrawn in place, so a selection the user makes
            # meanwhile is not lost to a rebuild.
            for item, (_, text) in zip(items, rows, strict=True):
                item.query_one(Static).update(text)
            return
        self.executor_ids = ids
        await view.clear()
        await view.extend(ListItem(Static(text)) for _, text in rows)
        if self.executor in self.executor_ids:
            view.index = self.executor_ids.index(self.executor)
        elif rows:
            view.index = min(index or 0, len(rows) - 1)

    @on(ListView.Highlighted, "#wf-graph")
    def executor_highlighted(self, event: ListView.Highlighted) -> None:
        if event.item is not self.query_one("#wf-graph", ListView).highlighted_child:
            return  # posted during a rebuild of the graph: no longer what is highlighted
        index = self.query_one("#wf-graph", ListView).index
        if index is not None and 0 <= index < len(self.executor_ids):
            self.executor = self.executor_ids[index]
            self._draw_executor()

    @on(DataTable.RowHighlighted, "#wf-events")
    def event_highlighted(self, event: DataTable.RowHighlighted) -> None:
        """An event of an executor picks that executor in the graph (its input and output below), when
        the user moves through the events: rows a refresh adds must not take the graph's selection."""
        if not event.data_table.has_focus or not 0 <= event.cursor_row < len(self.events):
            return
        data = self.events[event.cursor_row].data
        executor = data.get("executor") or data.get("sourceExecutor")
        if executor in self.executor_ids and executor != self.executor:
            self.executor = str(executor)
            self.query_one("#wf-graph", ListView).index = self.executor_ids.index(self.executor)
            self._draw_executor()

    def _draw_executor(self) -> None:
        box = self.query_one("#wf-executor", Static)
        index = self.query_one("#wf-graph", ListView).index
        if index is not None and 0 <= index < len(self.executor_ids):
            self.executor = self.executor_ids[index]  # what the graph shows highlighted is what is shown
        graph = self.graph()
        if self.executor is None or graph is None:
            box.border_title = "Executor"
            box.update(Text("select an executor in the graph", style="dim"))
            return
        executor = self.executor
        kind = graph.executors.get(executor, "executor")
        record = executor_records(self.received).get(executor)
        state = executor_states(self.status).get(executor, "idle")
        box.border_title = f"{executor} ({KIND_NOTES.get(kind) or 'executor'})"
        text = Text()

        def line(label: str, value: str, style: str = "") -> None:
            text.append(f"{label:<9}", style="bold cyan")
            text.append(value, style=style)
            text.append("\n")

        line("State", state, EXECUTOR_STYLES.get(state, ""))
        if kind == "agent" and self.selected is not None:
            line("Session", f"{self.selected[0]}-{executor} / {self._hide(self.selected[1])} (o opens it)")
        if record is None:
            line("Events", "not invoked yet", "dim")
        else:
            for value in record.inputs[-1:]:
                line("Input", format_value(value, 300))
            if record.streamed and len(record.results) < len(record.inputs):
                line("Streaming", format_value(record.streamed, 300), "italic")
            for result in record.results[-1:]:
                if result.get("kind") == "agent":
                    line("Reply", format_value(result.get("text") or "", 300))
                else:
                    for key in ("sent", "outputs"):
                        if result.get(key):
                            line(key.capitalize(), format_value(result[key], 300))
                    if result.get("state"):
                        line("State set", ", ".join(map(str, result["state"])))
            for error in record.errors[-1:]:
                line("Error", format_value(error, 300), "bold red")
            if record.tokens:
                line("Tokens", str(record.tokens))
            if len(record.inputs) > 1:
                line("Runs", str(len(record.inputs)), "dim")
        text.rstrip()
        box.update(text)

    def _draw_pending(self) -> None:
        box = self.query_one("#wf-pending", Static)
        requests = (self.status or {}).get("pendingHumanInputRequests") or []
        box.display = bool(requests)
        text = Text()
        for request in requests:
            text.append(f"{request.get('sourceExecutor')}", style="bold cyan")
            text.append(f" asks ({request.get('responseType')}): ", style="dim")
            text.append(format_value(request.get("requestData"), 200))
            text.append("\n")
        if requests:
            text.append("a: answer", style="italic dim")
        box.update(text)

    # ---- actions ----------------------------------------------------------------------------------

    def action_reload(self) -> None:
        self._rows_shown = self._status_shown = None
        self.reload()

    def action_answer(self) -> None:
        requests = (self.status or {}).get("pendingHumanInputRequests") or []
        if self.selected is None or not requests:
            self.notify("The selected instance waits for no one", severity="warning")
            return
        request = next((r for r in requests if r.get("sourceExecutor") == self.executor), requests[0])
        name, instance_id = self.selected

        def send(answer: Any) -> None:
            if answer is not None:
                self.respond(name, instance_id, str(request["requestId"]), answer)

        self.app.push_screen(RespondScreen(request, self.show_volatile), send)

    @work(group="wf-action")
    async def respond(self, name: str, instance_id: str, request_id: str, answer: Any) -> None:
        """Send the form's answer; the host's refusal (a wrong shape, a request already answered)
        is a notice."""
        try:
            await self.client.workflow_respond(name, instance_id, request_id, answer)
        except ClientError as exc:
            self.notify(str(exc), title="Answer refused", severity="error")
            return
        self.notify(f"Answered {self._hide(request_id)}")
        self.load_status()

    def action_open_agent(self) -> None:
        graph = self.graph()
        if self.selected is None or graph is None or self.executor is None:
            self.notify("Select an agent executor in the graph first", severity="warning")
            return
        if graph.executors.get(self.executor) != "agent":
            self.notify(f"{self.executor} is not an agent executor", severity="warning")
            return
        from durableagent.workflows.orchestrator import scoped_agent_name, session_key_for

        name, instance_id = self.selected
        open_session = getattr(self.app, "open_agent_session", None)
        if open_session is not None:
            open_session(scoped_agent_name(name, self.executor), session_key_for(instance_id))

    def action_terminate(self) -> None:
        if self.selected is None or (self.status is not None and is_finished(self.status)):
            self.notify("Select a running instance first", severity="warning")
            return
        self.terminate(self.selected[1])

    @work(group="wf-action")
    async def terminate(self, instance_id: str) -> None:
        try:
            await self.client.terminate(instance_id, "terminated from the TUI")
        except ClientError as exc:
            self.notify(str(exc), title="Terminate failed", severity="error")
            return
        self.notify(f"Terminating {instance_id}")
        self.load_status()
