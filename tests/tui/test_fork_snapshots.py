"""SVG snapshots of forking in the TUI: the chat's turn cursor and the diff of a fork with its source.

Stable as test_snapshots.py is: fixed session ids reset before use, no volatile fields, no
instances pane. Update with `pytest tests/tui/test_fork_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

from harness.client import SyncAgentClient
from harness.tui.diff import DiffScreen
from harness.tui.fork import ChatLog

from .conftest import AGENT
from .test_snapshots import SIZE, settled, snapshot_app

SOURCE, FORK = "snap-fork-source", "snap-fork-copy"


def prepared(client: SyncAgentClient) -> None:
    """The source has two turns; the fork copies the first and asks something else."""
    for session in (SOURCE, FORK):
        client.reset(AGENT, session)
    client.run(AGENT, "What's the weather in Paris?", SOURCE)
    client.run(AGENT, "hello", SOURCE)
    client.fork(AGENT, SOURCE, 1, FORK)
    client.run(AGENT, "What's the weather in Oslo?", FORK)


def test_turn_cursor_in_the_chat(app_url, sync_client, snap_compare):
    prepared(sync_client)

    async def run_before(pilot) -> None:
        await settled(pilot)
        pilot.app.query_one(ChatLog).focus()
        await pilot.press("up")
        await pilot.pause()

    assert snap_compare(snapshot_app(app_url, SOURCE), terminal_size=SIZE, run_before=run_before)


def test_diff_of_a_fork_with_its_source(app_url, sync_client, snap_compare):
    prepared(sync_client)

    async def run_before(pilot) -> None:
        await settled(pilot)
        pilot.app.push_screen(DiffScreen(pilot.app.client, AGENT, SOURCE, FORK))
        await settled(pilot)

    assert snap_compare(snapshot_app(app_url, FORK), terminal_size=SIZE, run_before=run_before)
