"""Pilot tests of forking and diffing in the TUI (issue 13, part 4), against the real local stack."""

from __future__ import annotations

import pytest
from textual.widgets import Collapsible, Static

from harness.client import AgentClient, SyncAgentClient
from harness.session_diff import diff_sessions
from harness.tui import ChatApp
from harness.tui.diff import DiffScreen
from harness.tui.fork import ChatLog, SessionList
from harness.tui.inspector import StateInspector
from harness.tui.widgets import UserBubble

from .conftest import AGENT

SIZE = (140, 40)
MESSAGES = ("What's the weather in Paris?", "hello", "What's the weather in Oslo?")


async def settle(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    await pilot.pause()


def conversation(client: SyncAgentClient, session: str, messages=MESSAGES) -> None:
    for message in messages:
        client.run(AGENT, message, session)


def selected_turns(app: ChatApp) -> set[int]:
    return {child.turn for child in app.query_one(ChatLog).children if child.has_class("selected-turn")}


def diff_text(screen: DiffScreen, side: str) -> str:
    return "\n".join(str(s.render()) for s in screen.query_one(f"#diff-{side}").query(Static))


def forking_app(app_url: str, source: str, target: str) -> ChatApp:
    """The chat on `source`, whose next new session id (the fork's) is `target`."""
    return ChatApp(AgentClient(app_url), AGENT, session_id=source, session_id_factory=lambda: target)


@pytest.fixture
def three_turns(sync_client: SyncAgentClient, unique_session: str) -> str:
    conversation(sync_client, unique_session)
    return unique_session


async def test_fork_at_a_turn_from_the_chat_then_diff_with_the_source(
    app_url, sync_client: SyncAgentClient, three_turns
):
    unique_session, target = three_turns, f"{three_turns}-fork"
    async with forking_app(app_url, unique_session, target).run_test(size=SIZE) as pilot:
        app = pilot.app
        await settle(pilot)
        app.query_one(ChatLog).focus()
        await pilot.pause()
        assert selected_turns(app) == {3}  # the cursor starts at the newest turn
        await pilot.press("up")
        assert selected_turns(app) == {2}
        await pilot.press("up", "up", "down")  # stops at turn 1, then back to 2
        assert selected_turns(app) == {2}
        await pilot.press("f")
        await settle(pilot)

        assert app.session_id == target
        assert [b.text for b in app.query(UserBubble)] == list(MESSAGES[:2])
        stored = sync_client.state(AGENT, target)
        assert stored is not None and stored["message_count"] == 4
        assert stored["forked_from"]["session_id"] == unique_session and stored["forked_from"]["turn"] == 2
        assert any(row.session_id == target for row in app.session_rows)

        # The fork goes its own way, then `d` in the chat compares it with its source.
        await pilot.press(*"What's the weather in Rome?")
        await pilot.press("enter")
        await settle(pilot)
        app.query_one(ChatLog).focus()
        await pilot.press("d")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DiffScreen)
        assert (screen.left, screen.right) == (unique_session, target)
        assert screen.diff is not None and screen.diff.shared == 2
        assert "Turns 1-2 are the same in both (collapsed); they part at turn 3." in str(
            screen.query_one("#diff-shared").render()
        )
        assert "Oslo" in diff_text(screen, "left") and "Rome" not in diff_text(screen, "left")
        assert "Rome" in diff_text(screen, "right") and "turn 3" in diff_text(screen, "right")
        common = screen.query_one("#diff-common", Collapsible)
        assert common.collapsed and "Paris" in str(common.query_one(".diff-common-turns", Static).render())
        await pilot.press("escape")
        assert not isinstance(app.screen, DiffScreen)
        assert app.focused is app.query_one("#prompt")  # typing goes to the prompt again
        # The same from the command palette.
        command = next(c for c in app.get_system_commands(app.screen) if c.title == "Diff with fork source")
        command.callback()
        await settle(pilot)
        assert isinstance(app.screen, DiffScreen) and app.screen.left == unique_session
    source = sync_client.state(AGENT, unique_session)
    assert source is not None and source["message_count"] == 6


async def test_fork_from_the_inspector_at_the_cursor_turn(app_url, sync_client: SyncAgentClient, three_turns):
    target = f"{three_turns}-tree"
    app = forking_app(app_url, three_turns, target)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        inspector = app.query_one(StateInspector)
        inspector.focus()
        await pilot.press("f")  # on the root: not a message
        await pilot.pause()
        assert app.session_id == three_turns
        message = next(
            node
            for node in inspector.root.children
            if node.id in inspector._turns and inspector._turns[node.id] == 1
        )
        inspector.move_cursor(message.children[0])  # inside the first message
        assert inspector.cursor_turn() == 1
        await pilot.press("f")
        await settle(pilot)
        assert app.session_id == target
    stored = sync_client.state(AGENT, target)
    assert stored is not None and stored["message_count"] == 2


async def test_a_fork_that_would_overwrite_is_a_notification(
    app_url, sync_client: SyncAgentClient, unique_session
):
    conversation(sync_client, unique_session, MESSAGES[:1])
    taken = f"{unique_session}-taken"
    sync_client.run(AGENT, "hello", taken)
    app = forking_app(app_url, unique_session, taken)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one(ChatLog).focus()
        await pilot.press("f")
        await settle(pilot)
        assert app.session_id == unique_session
        assert any("already exists with 1 turn" in n.message for n in app._notifications)
        await pilot.press("d")  # not a fork: nothing to compare with
        await pilot.pause()
        assert not isinstance(app.screen, DiffScreen)
        assert any("not a fork" in n.message for n in app._notifications)
    assert [e["content"] for e in (sync_client.state(AGENT, taken) or {})["conversation_history"]][
        0
    ] == "hello"


async def test_diff_any_session_from_the_list(app_url, sync_client: SyncAgentClient, unique_session):
    other = f"{unique_session}-other"
    conversation(sync_client, unique_session, MESSAGES[:2])
    conversation(sync_client, other, MESSAGES[:1] + MESSAGES[2:])
    app = ChatApp(
        AgentClient(app_url),
        AGENT,
        session_id=unique_session,
        session_filter=lambda row: row.session_id.startswith(unique_session),
    )
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        sessions = app.query_one(SessionList)
        sessions.focus()
        sessions.index = sessions.session_ids.index(other)
        await pilot.press("d")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, DiffScreen) and (screen.left, screen.right) == (other, unique_session)
        assert screen.diff is not None and screen.diff.shared == 1
        assert "Oslo" in diff_text(screen, "left") and "hello" in diff_text(screen, "right")


def test_diff_ignores_times_and_ids_but_not_what_was_said():
    def turn(message: str, reply: str, stamp: str) -> list[dict]:
        return [
            {"role": "user", "content": message, "timestamp": stamp, "correlation_id": stamp},
            {
                "role": "assistant",
                "content": reply,
                "status": "success",
                "timestamp": stamp,
                "correlation_id": stamp,
            },
        ]

    left = turn("a", "A", "1") + turn("b", "B", "2")
    right = turn("a", "A", "3") + turn("b", "other", "4") + turn("c", "C", "5")
    diff = diff_sessions(left, right)
    assert (
        diff.shared == 1 and [t.number for t in diff.left] == [2] and [t.number for t in diff.right] == [2, 3]
    )
    assert diff_sessions(left, left).same
