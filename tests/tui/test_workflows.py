"""The Workflows screen (harness/tui/workflows.py) on samples/workflows in the session's real host:
the graph coloured by executor state, the event timeline from the status route's stream, an
executor's input and output, an approval answered in place, `o` into an agent executor's session;
and SVG snapshots (`pytest tests/tui --snapshot-update` after an intended UI change).

Stable by construction: fixed instance ids, the list limited to the test's own instance,
`show_volatile=False` (generated request ids hidden), and the screen shown only once the events
the test expects have arrived (a running instance's event reader never ends, so no test waits for
all workers).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import DataTable, Input, Label, ListView, Switch

from harness.client import AgentClient, SyncAgentClient
from harness.tui import ChatApp
from harness.tui.widgets import AssistantBubble, UserBubble
from harness.tui.workflows import (
    RespondScreen,
    WorkflowsScreen,
    fallback_graph,
    graph_lines,
    parse_answer_form,
)
from harness.workflow_graph import WorkflowGraph, app_workflows

APP = Path(__file__).resolve().parents[2] / "samples" / "workflows"
SIZE = (140, 40)
SCHEMA = {
    "properties": {
        "approved": {"type": "boolean"},
        "feedback": {"type": "string", "default": ""},
        "score": {"type": "integer"},
        "weight": {"type": ["number", "null"]},
        "tags": {"type": "array"},
    },
    "required": ["approved", "score"],
}


@pytest.fixture(scope="module")
def function_host_app_dir() -> Path:
    return APP


@pytest.fixture(scope="module")
def graphs() -> dict[str, WorkflowGraph]:
    found = app_workflows(APP)
    assert found is not None
    return found


@pytest.fixture(autouse=True)
def _script(request):
    if "function_host" in request.fixturenames or "app_url" in request.fixturenames:
        chat_script = request.getfixturevalue("chat_script")
        chat_script.set(json.loads((APP / "fake_model.json").read_text(encoding="utf-8")))


# ---- without a host ----------------------------------------------------------------------------


def test_parse_answer_form_checks_each_field_against_the_schema() -> None:
    values = {"approved": True, "feedback": "ok", "score": " 3 ", "weight": "", "tags": '["a"]'}
    assert parse_answer_form(SCHEMA, values) == {
        "approved": True,
        "feedback": "ok",
        "score": 3,
        "tags": ["a"],
    }
    for changed, message in (
        ({"score": ""}, "score is required"),
        ({"score": "3.5"}, "score must be a whole number"),
        ({"weight": "heavy"}, "weight must be a number"),
        ({"tags": "[a"}, "tags is not valid JSON"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_answer_form(SCHEMA, {**values, **changed})
    assert parse_answer_form(None, {"value": '{"x": 1}'}) == {"x": 1}
    with pytest.raises(ValueError, match="empty"):
        parse_answer_form({}, {"value": " "})


def test_graph_lines_draw_by_distance_with_edges_and_states(graphs) -> None:
    lines = graph_lines(graphs["expert_review"], {"parse_question": "completed", "Physicist": "running"})
    assert [executor for executor, _ in lines] == ["parse_question", "Physicist", "Chemist", "aggregate"]
    first, physicist = lines[0][1].plain, lines[1][1].plain
    assert first == "● parse_question  start · completed\n  └─▶ Physicist, Chemist (fan-out)"
    assert physicist.startswith("  ◐ Physicist  agent · running\n") and "aggregate (fan-in)" in physicist
    assert lines[3][1].plain == "    ○ aggregate"
    switch = graph_lines(graphs["spam_triage"], {})[0][1].plain
    assert "quarantine, EmailAssistant (switch-case)" in switch
    assert [e for e, _ in graph_lines(graphs["refund_order"], {})][1] == "approval"
    assert "sub-workflow" in graph_lines(graphs["refund_order"], {})[1][1].plain


def test_without_the_apps_graph_the_executors_come_from_the_custom_status() -> None:
    status = {"customStatus": {"executors": {"a": "completed", "b": "running"}}}
    graph = fallback_graph("wf", status)
    assert graph.executors == {"a": "executor", "b": "executor"} and graph.edges == ()


# ---- on the real host --------------------------------------------------------------------------


def started(app_url: str, name: str, input: Any, run_id: str) -> str:
    with SyncAgentClient(app_url) as client:
        return str(client.workflow_run(name, input, run_id)["instanceId"])


def screen_for(app: ChatApp, graphs: dict[str, WorkflowGraph], instance_id: str) -> WorkflowsScreen:
    return WorkflowsScreen(
        app.client,
        graphs,
        show_volatile=False,
        refresh_every=0.5,
        instance_filter=lambda row: row.get("instanceId") == instance_id,
    )


def chat_app(app_url: str) -> ChatApp:
    return ChatApp(
        AgentClient(app_url),
        "content_approval-Writer",
        session_id="wf-chat",
        show_volatile=False,
        show_instances=False,
        instances_every=0,
    )


async def until(pilot, condition: Callable[[], Any], what: str, timeout: float = 30.0) -> None:
    """Poll the app until `condition()` (a running instance's event reader never completes)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for {what}"
        await pilot.pause(0.05)


def has_ended(screen: WorkflowsScreen) -> bool:
    """All events shown, and the graph drawn from the final status."""
    ended = bool(screen.events) and screen.events[-1].kind == "status"
    return ended and (screen.drawn or {}).get("runtimeStatus") == screen.events[-1].data["runtimeStatus"]


def waits_for_a_person(screen: WorkflowsScreen, events: int = 14) -> bool:
    """The request drawn, and the events up to it shown."""
    pending = (screen.drawn or {}).get("pendingHumanInputRequests")
    return bool(pending) and len(screen.events) >= events


async def show(pilot, graphs, instance_id: str) -> WorkflowsScreen:
    await pilot.app.workers.wait_for_complete()
    screen = screen_for(pilot.app, graphs, instance_id)
    await pilot.app.push_screen(screen)
    await until(pilot, lambda: screen.selected is not None, "the instance to be selected")
    return screen


def executor_row(screen: WorkflowsScreen, executor: str) -> int:
    return screen.executor_ids.index(executor)


async def select_executor(pilot, screen: WorkflowsScreen, executor: str) -> None:
    """Move the graph's highlight to `executor` with the arrow keys, as a user does, until the
    screen shows it (a status redraw may land between two key presses)."""
    view = screen.query_one("#wf-graph", ListView)
    view.focus()
    await pilot.pause()
    deadline = time.monotonic() + 30
    while screen.executor != executor:
        assert time.monotonic() < deadline, f"waited 30 s for {executor} to be selected"
        await pilot.press("up" if (view.index or 0) > executor_row(screen, executor) else "down")
        await pilot.pause(0.05)


async def test_a_finished_run_shows_its_events_states_and_an_executors_output(app_url, graphs) -> None:
    instance_id = started(app_url, "expert_review", "why is the sea salty", f"tui-er-{uuid.uuid4().hex[:6]}")
    app = chat_app(app_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = await show(pilot, graphs, instance_id)
        await until(pilot, lambda: has_ended(screen) and screen.executor_ids, "the run's end")
        table = screen.query_one("#wf-events", DataTable)
        assert table.row_count == len(screen.events) and [e.id for e in screen.events] == list(range(17))
        assert screen.events[-1].data["runtimeStatus"] == "Completed"
        graph = str(screen.query_one("#wf-graph", ListView).border_title)
        assert graph == "Graph: expert_review"
        await select_executor(pilot, screen, "Physicist")
        detail = str(screen.query_one("#wf-executor").render())
        assert "Physically, it is about energy and motion." in detail and "Tokens" in detail
        assert f"expert_review-Physicist / {instance_id} (o opens it)" in detail
        events = screen.query_one("#wf-events", DataTable)
        events.focus()
        events.move_cursor(row=13)  # aggregate's executor_completed: the graph follows
        await pilot.pause()
        assert screen.executor == "aggregate"
        assert '"Chemist": "Chemically' in str(screen.query_one("#wf-executor").render())


async def test_an_approval_is_answered_in_place(app_url, graphs) -> None:
    instance_id = started(app_url, "content_approval", "Announce Nimbus", f"tui-ca-{uuid.uuid4().hex[:6]}")
    app = chat_app(app_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = await show(pilot, graphs, instance_id)
        await until(pilot, lambda: waits_for_a_person(screen), "the request")
        drawn = [str(item.render()) for item in screen.query("#wf-graph Static")]
        assert drawn[1].startswith("  ? request_approval  waiting")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, RespondScreen), "the form")
        form = app.screen
        assert form.query_one("#field-approved", Switch).value is False
        form.query_one("#field-approved", Switch).value = True
        form.query_one("#field-feedback", Input).value = "ship it"
        await pilot.click("#respond-send")
        await until(pilot, lambda: app.screen is screen, "the form to close")
        await until(pilot, lambda: has_ended(screen), "the run's end")
        assert (
            screen.events[-1].data["output"]
            == "published: Meet Nimbus, our new cloud notebook. It syncs everywhere."
        )
        answered = [e.data for e in screen.events if e.kind == "request_answered"]
        assert answered[0]["response"] == {"approved": True, "feedback": "ship it"}


async def test_o_opens_the_agent_executors_session(app_url, graphs) -> None:
    instance_id = started(app_url, "content_approval", "Announce Nimbus", f"tui-o-{uuid.uuid4().hex[:6]}")
    app = chat_app(app_url)
    async with app.run_test(size=SIZE) as pilot:
        screen = await show(pilot, graphs, instance_id)
        await until(pilot, lambda: waits_for_a_person(screen), "the request")
        graph_view = screen.query_one("#wf-graph", ListView)
        graph_view.focus()
        graph_view.index = executor_row(screen, "notifier")
        await pilot.press("o")
        await pilot.pause()
        assert app.screen is screen  # not an agent: a notice, nothing opened
        graph_view.index = executor_row(screen, "Writer")
        await pilot.press("o")
        await until(pilot, lambda: app.screen is not screen and app.query(AssistantBubble), "the chat")
        assert (app.agent, app.session_id) == ("content_approval-Writer", instance_id)
        assert [b.text for b in app.query(UserBubble)] == ["Announce Nimbus"]


async def test_a_bad_answer_stays_in_the_form() -> None:
    request = {
        "sourceExecutor": "check",
        "responseType": "Answer",
        "responseSchema": SCHEMA,
        "requestData": {},
    }

    from textual.app import App

    class Host(App[None]):
        result: Any = "unset"

        def on_mount(self) -> None:
            self.push_screen(RespondScreen(request), lambda answer: setattr(self, "result", answer))

    app = Host()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.click("#respond-send")
        await pilot.pause()
        assert "score is required" in str(app.screen.query_one("#respond-error", Label).render())
        score = app.screen.query_one("#field-score", Input)
        score.value = "7"
        score.focus()
        await pilot.press("enter")
        await pilot.pause()
        assert not isinstance(app.screen, RespondScreen), app.screen.query_one(
            "#respond-error", Label
        ).render()
        assert app.result == {"approved": False, "score": 7}  # empty optional fields are left out


# ---- snapshots ---------------------------------------------------------------------------------


def test_snapshot_finished_fan_out(app_url, graphs, snap_compare) -> None:
    instance_id = started(app_url, "expert_review", "why is ice slippery", "snap-wf-review")

    async def run_before(pilot) -> None:
        screen = await show(pilot, graphs, instance_id)
        await until(pilot, lambda: has_ended(screen) and screen.executor_ids, "the run's end")
        await select_executor(pilot, screen, "Physicist")
        await pilot.pause()

    assert snap_compare(chat_app(app_url), terminal_size=SIZE, run_before=run_before)


def test_snapshot_approval_form(app_url, graphs, snap_compare) -> None:
    instance_id = started(app_url, "content_approval", "Announce Nimbus", "snap-wf-approval")

    async def run_before(pilot) -> None:
        screen = await show(pilot, graphs, instance_id)
        await until(pilot, lambda: waits_for_a_person(screen), "the request")
        await pilot.press("a")
        await until(pilot, lambda: isinstance(pilot.app.screen, RespondScreen), "the form")
        await pilot.pause()

    assert snap_compare(chat_app(app_url), terminal_size=SIZE, run_before=run_before)


async def test_ctrl_f_opens_the_screen_with_the_apps_graphs(app_url) -> None:
    instance_id = started(
        app_url, "shared_state", {"doc_id": "w", "text": "x y"}, f"tui-w-{uuid.uuid4().hex[:6]}"
    )
    app = ChatApp(
        AgentClient(app_url), "content_approval-Writer", show_volatile=False, instances_every=0, app_dir=APP
    )
    async with app.run_test(size=SIZE) as pilot:
        await pilot.app.workers.wait_for_complete()
        await pilot.press("ctrl+f")
        await until(pilot, lambda: isinstance(app.screen, WorkflowsScreen), "the screen")
        screen = app.screen
        await until(
            pilot,
            lambda: screen.graphs is not None and instance_id in [r["instanceId"] for r in screen.rows],
            "the graphs and the instance",
        )
        assert set(screen.graphs) == {
            "shared_state",
            "spam_triage",
            "expert_review",
            "content_approval",
            "refund_order",
        }
        assert all("~" not in str(r["instanceId"]) for r in screen.rows)  # sub-workflow children left out
        await pilot.press("escape")
        assert not isinstance(app.screen, WorkflowsScreen)
        assert app.workflow_graphs == screen.graphs  # read once: the next ctrl+f has them at once
