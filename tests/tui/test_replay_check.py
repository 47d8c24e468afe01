"""The instance inspector's replay check (issue 25): `c` replays the instance's history against the
app's current code (the stack's app folder) and marks the first event it diverges at."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from textual.widgets import DataTable

from tests.tui.test_instances import SIZE, make_app, open_instance, populated, settle

ROOT = Path(__file__).resolve().parents[2]
ORCH_APP = ROOT / "tests" / "host" / "orchestration_app"
IN_FLIGHT = json.loads((ROOT / "tests" / "replay" / "histories" / "azure_served.json").read_text())[1]


async def test_replay_check_marks_the_first_diverging_event(tmp_path: Path) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(ORCH_APP, changed)
    code = (changed / "function_app.py").read_text()
    old = 'context.call_activity("say_hello", city)'
    (changed / "function_app.py").write_text(
        code.replace(old, 'context.call_activity("say_hello", city.lower())')
    )
    fake = populated()
    fake.add("hello-1", "hello_sequence", "Running", input=["A", "B"], history=IN_FLIGHT["historyEvents"])
    app = make_app(fake)
    async with app.run_test(size=SIZE) as pilot:
        app.app_dir = ORCH_APP
        screen = await open_instance(pilot, "hello-1")
        await pilot.press("c")
        await settle(pilot)
        assert screen.diverged_at is None
        app.app_dir = changed
        await pilot.press("c")
        await settle(pilot)
        assert screen.diverged_at == 1
        table = screen.query_one("#timeline", DataTable)
        assert table.cursor_row == 1
        what = table.get_row_at(1)[2]
        assert what.plain.startswith("≠ say_hello") and "red" in str(what.style)
        assert not table.get_row_at(2)[2].plain.startswith("≠")
