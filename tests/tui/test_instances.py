"""The Instances pane, the instance inspector and its actions, against the fake instance API.

No engine and no host: `tests.cli.fake_instances` serves the Durable instance API shapes (and the
health and session routes the chat reads) through an httpx mock transport.
"""

from __future__ import annotations

import time

import httpx
import pytest
from textual.widgets import DataTable, Input, Label, ListView

from harness.client import AgentClient
from harness.tui import ChatApp
from harness.tui.instances import ConfirmScreen, InstanceScreen, RaiseEventScreen, parse_event_form
from harness.tui.widgets import AssistantBubble, UserBubble
from tests.cli.fake_instances import FakeDurableApi

SIZE = (140, 40)

AGENT_CALL_HISTORY = [
    {
        "EventType": "ExecutionStarted",
        "Timestamp": "2026-01-01T10:00:00Z",
        "FunctionName": "trip",
        "Input": None,
    },
    {
        "EventType": "EntityCalled",
        "Timestamp": "2026-01-01T10:00:03Z",
        "ScheduledTime": "2026-01-01T10:00:01Z",
        "InstanceId": "@dafx-weatheragent@trip-s1",
        "Operation": "run_agent",
        "Result": {"response": "Sunny"},
    },
    {
        "EventType": "TaskFailed",
        "Timestamp": "2026-01-01T10:00:04Z",
        "ScheduledTime": "2026-01-01T10:00:03.500Z",
        "FunctionName": "book_hotel",
        "Reason": "RuntimeError: no rooms",
    },
]


def populated() -> FakeDurableApi:
    fake = FakeDurableApi()
    fake.add("done-1", "echo", "Completed", input="a", output="a")
    fake.add("trip-1", "trip", "Running", customStatus="waiting for approval", history=AGENT_CALL_HISTORY)
    fake.add("boom-1", "boom", "Failed", output="ValueError: boom")
    fake.sessions[("weatheragent", "trip-s1")] = {
        "message_count": 2,
        "conversation_history": [
            {"role": "user", "content": "Weather in Rome?"},
            {"role": "assistant", "content": "Sunny in Rome.", "status": "success"},
        ],
    }
    return fake


def make_app(fake: FakeDurableApi, **options) -> ChatApp:
    client = AgentClient("http://app", transport=httpx.MockTransport(fake.handle))
    options.setdefault("instances_every", 0)
    return ChatApp(client, "WeatherAgent", session_id="s-main", show_volatile=False, **options)


async def settle(pilot) -> None:
    """Wait for the workers (screen workers are the app's too) and for what they started."""
    for _ in range(2):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def open_instance(pilot, instance_id: str) -> InstanceScreen:
    app = pilot.app
    await settle(pilot)
    view = app.query_one("#instances", ListView)
    view.focus()
    view.index = [r["instanceId"] for r in app.instance_rows].index(instance_id)
    await pilot.press("enter")
    await settle(pilot)
    assert isinstance(app.screen, InstanceScreen)
    return app.screen


def test_parse_event_form() -> None:
    assert parse_event_form(" Approval ", '{"approved": true}') == ("Approval", {"approved": True})
    assert parse_event_form("Go", "  ") == ("Go", None)
    for name, data, message in (
        ("", "1", "needs a name"),
        ("a/b", "", "cannot contain"),
        ("Go", "{x", "not valid JSON"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_event_form(name, data)


async def test_list_newest_first_with_status_and_live_refresh() -> None:
    fake = populated()
    app = make_app(fake, instances_every=0.1)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert [r["instanceId"] for r in app.instance_rows] == ["boom-1", "trip-1", "done-1"]
        labels = [
            str(item.query_one("InstanceItemLabel").render()) for item in app.query("#instances ListItem")
        ]
        assert "Failed" in labels[0] and "waiting for approval" in labels[1] and "Completed" in labels[2]

        fake.add("new-1", "approval", "Running")
        deadline = time.monotonic() + 5  # the pane refreshes every 0.1 s by itself
        while app.instance_rows[0]["instanceId"] != "new-1":
            assert time.monotonic() < deadline, [r["instanceId"] for r in app.instance_rows]
            await pilot.pause(0.05)


async def test_inspector_shows_status_and_timeline_with_failures() -> None:
    app = make_app(populated())
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_instance(pilot, "trip-1")
        details = str(screen.query_one("#instance-details").render())
        assert "waiting for approval" in details and "Running" in details
        assert [(r.kind, r.title) for r in screen.rows] == [
            ("start", "started trip"),
            ("agent", "agent weatheragent · session trip-s1"),
            ("activity", "book_hotel"),
        ]
        table = screen.query_one("#timeline", DataTable)
        assert table.row_count == 3
        took, _, what, detail = table.get_row_at(2)
        assert took == "500 ms" and "red" in str(what.style) and "no rooms" in detail.plain
        assert table.get_row_at(1)[0] == "2.0 s"
        await pilot.press("escape")
        assert not isinstance(app.screen, InstanceScreen)


async def test_agent_call_opens_the_session_chat() -> None:
    app = make_app(populated())
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_instance(pilot, "trip-1")
        table = screen.query_one("#timeline", DataTable)
        table.focus()
        table.move_cursor(row=1)
        await pilot.press("o")
        await settle(pilot)
        assert not isinstance(app.screen, InstanceScreen)
        assert (app.agent, app.session_id) == ("WeatherAgent", "trip-s1")
        assert [b.text for b in app.query(UserBubble)] == ["Weather in Rome?"]
        assert [b.content for b in app.query(AssistantBubble)] == ["Sunny in Rome."]


async def test_raise_event_form_validates_then_sends() -> None:
    fake = populated()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        fake.add("appr-1", "approval", "Running", customStatus="waiting for approval")
        app.refresh_instances()
        await open_instance(pilot, "appr-1")
        await pilot.press("e")
        await pilot.pause()
        assert isinstance(app.screen, RaiseEventScreen)
        await pilot.press(*"Approval", "tab", *"{approved: yes}", "enter")
        await pilot.pause()
        assert isinstance(app.screen, RaiseEventScreen)
        assert "not valid JSON" in str(app.screen.query_one("#event-error", Label).render())
        assert not any(r.url.path.endswith("/raiseEvent/Approval") for r in fake.requests)

        app.screen.query_one("#event-data", Input).value = '{"approved": true}'
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, InstanceScreen)
        assert fake.instances["appr-1"]["runtimeStatus"] == "Completed"
        assert fake.instances["appr-1"]["output"]["approved"] is True
        assert "Completed" in str(app.screen.query_one("#instance-details").render())
        assert app.screen.rows[-2].title == "event Approval"


async def test_terminate_and_purge() -> None:
    fake = populated()
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_instance(pilot, "trip-1")
        await pilot.press("t")
        await settle(pilot)
        assert fake.instances["trip-1"]["runtimeStatus"] == "Terminated"
        assert "Terminated" in str(screen.query_one("#instance-details").render())

        await pilot.press("p")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        await pilot.pause()
        assert "trip-1" in fake.instances and isinstance(app.screen, InstanceScreen)

        await pilot.press("p")
        await pilot.pause()
        await pilot.press("y")
        await settle(pilot)
        assert "trip-1" not in fake.instances
        assert not isinstance(app.screen, InstanceScreen)
        assert "trip-1" not in [r["instanceId"] for r in app.instance_rows]


async def test_host_without_orchestrations_is_a_quiet_note() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if "/instances" in request.url.path:
            return httpx.Response(501, json={"error": "orchestrations are not supported by the local host"})
        return FakeDurableApi().handle(request)

    app = ChatApp(
        AgentClient("http://app", transport=httpx.MockTransport(handler)), "WeatherAgent", instances_every=0
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.instance_rows == []
        notes = [str(label.render()) for label in app.query("#instances Label")]
        assert notes == ["no orchestrations on this host"]


# ---- snapshots ---------------------------------------------------------------------------------


async def _steady(pilot) -> None:
    await settle(pilot)
    pilot.app.query_one("#prompt", Input).cursor_blink = False


def test_snapshot_instances_pane(snap_compare) -> None:
    assert snap_compare(make_app(populated()), terminal_size=SIZE, run_before=_steady)


def test_snapshot_instance_inspector(snap_compare) -> None:
    async def run_before(pilot) -> None:
        await _steady(pilot)
        await open_instance(pilot, "trip-1")

    assert snap_compare(make_app(populated()), terminal_size=SIZE, run_before=run_before)


def test_snapshot_raise_event_form_with_error(snap_compare) -> None:
    async def run_before(pilot) -> None:
        await _steady(pilot)
        await open_instance(pilot, "trip-1")
        await pilot.press("e")
        await pilot.pause()
        await pilot.press(*"Approval", "tab", *"{bad", "enter")
        await pilot.pause()
        pilot.app.screen.query_one("#event-data", Input).cursor_blink = False

    assert snap_compare(make_app(populated()), terminal_size=SIZE, run_before=run_before)
