"""The chat TUI on a host with a manual virtual clock: the header shows it, the palette moves it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from harness.client import AgentClient
from harness.tui import ChatApp

from .conftest import AGENT
from .test_app import SIZE, settle

pytestmark = pytest.mark.virtual_time("manual")


async def test_header_shows_the_virtual_now_and_the_palette_advances_it(app_url, virtual_clock):
    before = virtual_clock.now()
    app = ChatApp(AgentClient(app_url), AGENT)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        shown = before.isoformat().replace("+00:00", "Z")
        assert app.sub_title.endswith(f"virtual time {shown} (manual)"), app.sub_title
        commands = {c.title: c.callback for c in app.get_system_commands(app.screen)}
        commands["Advance clock 1 day"]()
        await settle(pilot)
        await settle(pilot)
    assert virtual_clock.now() == before + timedelta(days=1)
    moved = (before + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert app.sub_title.endswith(f"virtual time {moved} (manual)"), app.sub_title
