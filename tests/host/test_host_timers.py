"""Timer triggers on the local host: NCRONTAB and TimeSpan schedules, run_on_startup, durable clients."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from harness.host import LocalHost
from harness.host.errors import AppLoadError
from harness.host.triggers.timers import Schedule

from .helpers import read_state, wait_state

TIMER_APP = Path(__file__).resolve().parent / "timer_app"
T0 = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def test_ncrontab_has_the_seconds_first():
    every_five_minutes = Schedule.parse("0 */5 * * * *")
    assert every_five_minutes.next_after(T0) == T0 + timedelta(minutes=5)
    at_thirty_seconds = Schedule.parse("30 * * * * *")
    assert at_thirty_seconds.next_after(T0) == T0 + timedelta(seconds=30)
    weekdays_at_nine = Schedule.parse("0 0 9 * * 1-5")
    assert weekdays_at_nine.next_after(T0) == datetime(2026, 1, 2, 9, 0, tzinfo=UTC)  # a Friday


def test_timespan_and_app_settings(monkeypatch: pytest.MonkeyPatch):
    assert Schedule.parse("00:00:10").next_after(T0) == T0 + timedelta(seconds=10)
    assert Schedule.parse("1.02:00:00").next_after(T0) == T0 + timedelta(days=1, hours=2)
    monkeypatch.setenv("SWEEP", "0 0 * * * *")
    assert Schedule.parse("%SWEEP%").next_after(T0) == T0 + timedelta(hours=1)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("*/5 * * * *", "six fields"),
        ("0 61 * * * *", "not a valid NCRONTAB"),
        ("00:00:00", "zero"),
        ("%NOT_SET_ANYWHERE%", "not set"),
    ],
)
def test_bad_schedules_say_what_is_wrong(text: str, problem: str):
    with pytest.raises(ValueError, match=problem):
        Schedule.parse(text)


async def test_timers_fire_on_schedule_and_at_start_with_a_durable_client(azurite_connstr, hub, http):
    async with LocalHost(TIMER_APP, port=0, storage=azurite_connstr, hub_name=hub) as host:
        await wait_state(http, host.url, "ticks", "start", 1)  # run_on_startup, once
        await wait_state(http, host.url, "ticks", "second", 2, timeout=10)  # then every second
        status, started = await read_state(http, host.url, "ticks", "start")
        assert (status, started) == (200, 1)


async def test_a_bad_schedule_stops_the_host_at_start(azurite_connstr, hub, tmp_path: Path):
    app = tmp_path / "app"
    shutil.copytree(TIMER_APP, app)
    source = (
        (app / "function_app.py").read_text().replace('schedule="* * * * * *"', 'schedule="every second"')
    )
    (app / "function_app.py").write_text(source)
    with pytest.raises(AppLoadError, match="function every_second: schedule 'every second' must be NCRONTAB"):
        await LocalHost(app, port=0, storage=azurite_connstr, hub_name=hub).start()
