"""Keyboard reach of the chat TUI (issue 20, item 10): Tab order and the footer's keys.

docs/harness.md says the chat is focused with Tab and lists the app's keys; at 80x24 the footer cut off
`ctrl+l` and `ctrl+b`, and Tab from the prompt went round the whole sidebar before the chat.
"""

from __future__ import annotations

from textual.widget import Widget
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from harness.client import AgentClient
from harness.tui import ChatApp
from harness.tui.fork import ChatLog

from .conftest import AGENT
from .test_app import send, settle
from .test_instances import make_app, open_instance, populated
from .test_instances import settle as settle_instances

NARROW = (80, 24)
WIDE = (140, 40)
README_KEYS = {
    "ctrl+n",
    "ctrl+t",
    "ctrl+y",
    "ctrl+g",
    "ctrl+r",
    "ctrl+l",
    "ctrl+b",
    "ctrl+o",
    "ctrl+q",
    "ctrl+p",
}
"""The keys docs/harness.md's TUI section (The chat TUI) lists for the chat screen."""


def pane(widget: Widget | None) -> str:
    return widget.id or type(widget).__name__ if widget is not None else "nothing"


async def tab_round(pilot, key: str = "tab") -> list[str]:
    """The panes `key` focuses, pressed until the focus is back where it started."""
    start = pilot.app.focused
    seen: list[str] = []
    for _ in range(12):
        await pilot.press(key)
        await pilot.pause()
        seen.append(pane(pilot.app.focused))
        if pilot.app.focused is start:
            return seen
    raise AssertionError(f"focus never came back to {pane(start)}: {seen}")


async def test_tab_from_the_prompt_goes_to_the_chat_after_a_turn(app_url, unique_session):
    app = ChatApp(AgentClient(app_url), AGENT, session_id=unique_session)
    async with app.run_test(size=NARROW) as pilot:
        await send(pilot, "What's the weather in Paris?")
        assert pane(app.focused) == "prompt"
        await pilot.press("tab")
        await pilot.pause()
        chat = app.query_one(ChatLog)
        assert app.focused is chat
        assert chat.selected_turn == 1  # the turn cursor is on the turn just sent
        await pilot.press("shift+tab")
        await pilot.pause()
        assert pane(app.focused) == "prompt"
        # Every pane once, the chat right after the prompt, back to the prompt at the end.
        assert await tab_round(pilot) == ["chat", "agents", "sessions", "instances", "prompt"]
        assert await tab_round(pilot, "shift+tab") == ["instances", "sessions", "agents", "chat", "prompt"]

        # After the next turn, Tab lands on that turn (not on the one the cursor was on before).
        await send(pilot, "hello")
        await pilot.press("tab")
        await pilot.pause()
        assert app.focused is chat and chat.selected_turn == 2
        assert [w.has_class("selected-turn") for w in chat.children if getattr(w, "turn", None) == 2]
        assert all(w.has_class("selected-turn") for w in chat.children if getattr(w, "turn", None) == 2)


async def test_tab_order_with_the_inspector_shown(app_url, unique_session):
    app = ChatApp(AgentClient(app_url), AGENT, session_id=unique_session)
    async with app.run_test(size=WIDE) as pilot:
        await send(pilot, "hello")
        assert await tab_round(pilot) == ["chat", "inspector", "agents", "sessions", "instances", "prompt"]


def visible_footer_keys(app: ChatApp) -> set[str]:
    """Keys whose whole label is inside the footer and not under another key (a key pushed past
    the edge keeps a region outside the screen; the docked palette key is drawn over others)."""
    footer = app.screen.query_one(Footer)
    keys = list(footer.query(FooterKey))
    visible = set()
    for key in keys:
        region = key.region
        inside = footer.region.contains_region(region) and region.width >= len(key.description) + 2
        covered = any(other is not key and other.region.overlaps(region) for other in keys)
        if inside and not covered:
            visible.add(key.key)
    return visible


async def test_footer_shows_every_readme_key_at_80_columns(app_url, unique_session):
    app = ChatApp(AgentClient(app_url), AGENT, session_id=unique_session)
    async with app.run_test(size=NARROW) as pilot:
        await settle(pilot)
        assert README_KEYS <= visible_footer_keys(app)
        # With the chat focused its own keys join them, and still nothing is cut off.
        app.query_one(ChatLog).focus()
        await pilot.pause()
        assert README_KEYS | {"f", "d"} <= visible_footer_keys(app)
        app.query_one("#sessions").focus()
        await pilot.pause()
        assert README_KEYS | {"d"} <= visible_footer_keys(app)


async def test_footer_is_one_row_in_a_wide_terminal(app_url, unique_session):
    app = ChatApp(AgentClient(app_url), AGENT, session_id=unique_session)
    async with app.run_test(size=WIDE) as pilot:
        await settle(pilot)
        assert app.screen.query_one(Footer).region.height == 1
        assert README_KEYS <= visible_footer_keys(app)


async def test_instance_screen_footer_shows_its_keys_at_80_columns():
    """docs/harness.md's keys of the instance inspector (e, t, p, o, r, Esc): `r` was cut off."""
    app = make_app(populated())
    async with app.run_test(size=NARROW) as pilot:
        await open_instance(pilot, "trip-1")
        await settle_instances(pilot)
        assert {"escape", "e", "t", "p", "o", "r", "ctrl+q", "ctrl+p"} <= visible_footer_keys(app)
