"""Pilot tests of the chat TUI against the real local stack (fake model, weather sample)."""

from __future__ import annotations

import time
from pathlib import Path

from textual.widgets import Input, ListView, Log

from harness.client import AgentClient, SyncAgentClient
from harness.tui import ChatApp
from harness.tui.app import ChatApp as ChatAppClass
from harness.tui.inspector import StateInspector
from harness.tui.screens import LogsScreen
from harness.tui.widgets import AssistantBubble, EmptyChat, ErrorBubble, ToolCallCard, UserBubble

from .conftest import AGENT

SIZE = (140, 40)


def tree_labels(app: ChatAppClass) -> list[str]:
    """Plain text of every node label in the inspector (expanded or not)."""
    inspector = app.query_one(StateInspector)
    labels: list[str] = []
    stack = [inspector.root]
    while stack:
        node = stack.pop()
        labels.append(str(node.label))
        stack.extend(node.children)
    return labels


async def settle(pilot) -> None:
    """Wait for the app's workers (loading, the turn) and the refresh that follows them."""
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


async def send(pilot, text: str) -> None:
    """Type a message like a user and press Enter, then wait for the turn to finish."""
    await settle(pilot)
    await pilot.press(*text)
    await pilot.press("enter")
    await settle(pilot)


async def test_turn_with_tool_call_shows_reply_and_state(app_url, unique_session):
    app = ChatApp(AgentClient(app_url), AGENT, session_id=unique_session)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.query(EmptyChat)
        assert app.query_one("#prompt", Input).has_focus
        await send(pilot, "What's the weather in Paris?")

        assert [b.text for b in app.query(UserBubble)] == ["What's the weather in Paris?"]
        cards = list(app.query(ToolCallCard))
        assert [c.call["name"] for c in cards] == ["get_weather"]
        assert cards[0].call["arguments"] == {"location": "Paris"}
        replies = [b.content for b in app.query(AssistantBubble)]
        assert len(replies) == 1 and "Paris" in replies[0]
        assert not app.query_one("#thinking").display
        assert app.query_one("#prompt", Input).value == ""

        labels = tree_labels(app)
        assert any(f"session {unique_session} · 2 messages" in label for label in labels)
        assert any("get_weather(location=" in label for label in labels)
        assert any(label.startswith("tokens (total)") for label in labels)
        assert any(label.startswith("correlation_id: ") for label in labels)
        assert app.state is not None and app.state["message_count"] == 2

        sessions = app.query_one("#sessions", ListView)
        assert app.session_rows[sessions.index or 0].session_id == unique_session
        assert app.session_rows[sessions.index or 0].message_count == 2


async def test_failed_turn_is_an_error_in_the_chat(app_url, unique_session, chat_script):
    chat_script.set([{"error": "model exploded", "error_type": "ValueError"}])
    app = ChatApp(AgentClient(app_url), AGENT, session_id=unique_session)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hello")
        errors = [e.text for e in app.query(ErrorBubble)]
        assert len(errors) == 1 and "model exploded" in errors[0]
        assert any("✗ error" in label for label in tree_labels(app))


async def test_http_error_is_shown_not_raised(app_url, unique_session):
    app = ChatApp(AgentClient(app_url), "NoSuchAgent", session_id=unique_session)
    async with app.run_test(size=SIZE) as pilot:
        await send(pilot, "hi")
        errors = [e.text for e in app.query(ErrorBubble)]
        assert errors and errors[-1].startswith("HTTP 404 from POST /api/agents/NoSuchAgent/run")
        assert not app.busy


async def test_unreachable_app(dead_url):
    app = ChatApp(AgentClient(dead_url), AGENT)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        errors = [e.text for e in app.query(ErrorBubble)]
        assert errors and "cannot connect to" in errors[0]


async def test_sessions_newest_first_and_open_one(app_url, sync_client: SyncAgentClient, unique_session):
    older, newer = f"{unique_session}-a", f"{unique_session}-b"
    sync_client.run(AGENT, "hello", older)
    sync_client.run(AGENT, "What's the weather in Oslo?", newer)
    app = ChatApp(AgentClient(app_url), AGENT)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        ids = [row.session_id for row in app.session_rows]
        assert ids.index(newer) < ids.index(older)
        counts = {row.session_id: row.message_count for row in app.session_rows}
        assert counts[older] == 2 and counts[newer] == 2

        sessions = app.query_one("#sessions", ListView)
        sessions.focus()
        sessions.index = ids.index(older)
        await pilot.press("enter")
        await settle(pilot)
        assert app.session_id == older
        assert [b.text for b in app.query(UserBubble)] == ["hello"]
        assert not app.query(ToolCallCard)


async def test_new_reset_and_copy(app_url, sync_client: SyncAgentClient, unique_session):
    sync_client.run(AGENT, "hello", unique_session)
    app = ChatApp(AgentClient(app_url), AGENT, session_id=unique_session)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.query(UserBubble)

        await pilot.press("ctrl+y")
        assert app.clipboard == unique_session

        await pilot.press("ctrl+t")
        await settle(pilot)
        assert app.query(EmptyChat)
        assert (sync_client.state(AGENT, unique_session) or {}).get("conversation_history") == []

        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.session_id != unique_session
        assert app.session_rows[0].session_id == app.session_id


async def test_logs_modal_and_palette_commands(app_url, tmp_path: Path):
    log = tmp_path / "host.log"
    log.write_text("".join(f"line {i}\n" for i in range(500)), encoding="utf-8")
    app = ChatApp(AgentClient(app_url), AGENT, {"host": log, "azurite": tmp_path / "missing.log"})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = [command.title for command in app.get_system_commands(app.screen)]
        for title in ("New session", "Reset session", "Copy session id", "Refresh", "Show logs"):
            assert title in titles
        assert any(title.startswith("Quit") for title in titles)

        await pilot.press("ctrl+l")
        await pilot.pause()
        assert isinstance(app.screen, LogsScreen)
        logs = list(app.screen.query(Log))
        assert logs[0].lines[-1] == "line 499" and len(logs[0].lines) == 300
        assert logs[1].lines[0].startswith("(cannot read")
        await pilot.press("escape")
        assert not isinstance(app.screen, LogsScreen)

        await pilot.press("ctrl+b")
        assert not app.query_one(StateInspector).display


async def test_thinking_indicator_while_the_turn_runs(app_url, unique_session, chat_script):
    chat_script.set([{"text": "Slow *answer*.", "delay": 1.0}])
    app = ChatApp(AgentClient(app_url), AGENT, session_id=unique_session)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press(*"hi", "enter")
        # The fake model has the request, so the turn is running for a second: the UI shows it.
        deadline = time.monotonic() + 10
        while not chat_script.requests():
            assert time.monotonic() < deadline, "the turn never reached the model"
            await pilot.pause(0.02)
        assert app.busy and app.query_one("#thinking").display
        assert [b.text for b in app.query(UserBubble)] == ["hi"]
        await pilot.press(*"typing meanwhile")  # the UI is not blocked by the turn
        assert app.query_one("#prompt", Input).value == "typing meanwhile"
        await settle(pilot)
        assert not app.busy and not app.query_one("#thinking").display
        assert [b.content for b in app.query(AssistantBubble)] == ["Slow *answer*."]


async def test_a_narrow_terminal_keeps_the_chat_wide_enough_to_read(app_url, unique_session):
    """At 80 columns the inspector starts hidden (the chat had 13 columns beside it); ctrl+b shows it."""
    app = ChatApp(AgentClient(app_url), AGENT, session_id=unique_session)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        inspector = app.query_one(StateInspector)
        assert not inspector.display
        assert app.query_one("#chat").size.width >= 40
        await pilot.press("ctrl+b")
        await pilot.pause()
        assert inspector.display
    async with ChatApp(AgentClient(app_url), AGENT, session_id=unique_session).run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert pilot.app.query_one(StateInspector).display
