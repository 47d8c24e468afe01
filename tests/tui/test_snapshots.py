"""SVG snapshots of the main screens, against the real local stack with the scripted fake model.

Stable by construction: fixed session ids (reset before use), `show_volatile=False` (no times,
correlation ids or URL), the sessions pane limited to the snapshot's own session, no instances
pane (snapshotted on a fake API in test_instances.py), and a non-blinking prompt cursor.
Update with `pytest tests/tui --snapshot-update` after an intended UI change.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import pytest
from textual.widgets import Input

from harness.client import AgentClient, SessionSummary, SyncAgentClient
from harness.tui import ChatApp

from .conftest import AGENT

SIZE = (140, 36)


def snapshot_app(app_url: str, session_id: str) -> ChatApp:
    def only_this(summary: SessionSummary) -> bool:
        return summary.session_id == session_id

    return ChatApp(
        AgentClient(app_url),
        AGENT,
        session_id=session_id,
        show_volatile=False,
        session_filter=only_this,
        show_instances=False,  # what other tests start would show; tests/tui/test_instances.py covers it
    )


def steady_cursor(pilot) -> None:
    """The prompt's cursor blinks on a timer; a snapshot must not depend on its phase."""
    pilot.app.query_one("#prompt", Input).cursor_blink = False


def sending(message: str) -> Callable[..., Awaitable[None]]:
    """A `run_before` that types `message`, sends it and waits until the reply is rendered."""

    async def run_before(pilot) -> None:
        await pilot.app.workers.wait_for_complete()
        steady_cursor(pilot)
        await pilot.press(*message)
        await pilot.press("enter")
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()

    return run_before


async def settled(pilot) -> None:
    await pilot.app.workers.wait_for_complete()
    steady_cursor(pilot)
    await pilot.pause()


@pytest.fixture
def fresh_session(sync_client: SyncAgentClient):
    """Reset a fixed session id so its snapshot does not depend on earlier runs or tests."""

    def reset(session_id: str) -> str:
        sync_client.reset(AGENT, session_id)
        return session_id

    return reset


def test_empty_session(app_url, snap_compare):
    # Never written to: the stored state is absent, as for a brand-new session.
    assert snap_compare(snapshot_app(app_url, "snap-empty"), terminal_size=SIZE, run_before=settled)


def test_turn_with_tool_call(app_url, fresh_session, snap_compare):
    app = snapshot_app(app_url, fresh_session("snap-tool-call"))
    assert snap_compare(app, terminal_size=SIZE, run_before=sending("What's the weather in Paris?"))


def test_error_turn(app_url, fresh_session, chat_script, snap_compare):
    chat_script.set([{"error": "model exploded", "error_type": "ValueError"}])
    app = snapshot_app(app_url, fresh_session("snap-error"))
    assert snap_compare(app, terminal_size=SIZE, run_before=sending("hello"))


def test_narrow_terminal_after_a_turn(app_url, fresh_session, snap_compare):
    # 80x24: the inspector hidden, the footer in two rows holding every key (none cut off).
    app = snapshot_app(app_url, fresh_session("snap-narrow"))
    assert snap_compare(app, terminal_size=(80, 24), run_before=sending("What's the weather in Paris?"))
