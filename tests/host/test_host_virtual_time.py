"""Virtual time on the local host: the clock's admin API, durable timers, retries, timer triggers and
session TTLs that skip ahead, and a clock kept with its hub (`docs/virtual-time.md`)."""

from __future__ import annotations

import asyncio
import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from harness.cli.main import main as cli_main
from harness.host import LocalHost
from harness.host.clock import VIRTUAL_TIME_ENV, ClockError, VirtualClock, parse_duration
from harness.host.storage.hub_clock import ClockKindMismatch

from .helpers import read_state
from .test_host_orchestrations import status, wait_done

VT_APP = Path(__file__).resolve().parent / "vtime_app"
API = "/runtime/webhooks/durabletask"
T0 = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)  # a fresh hub's clock starts here: 9 o'clock is 23 h away


async def clock_call(http: aiohttp.ClientSession, host: LocalHost, body: Any = None) -> tuple[int, dict]:
    """GET /admin/clock, or POST it `body` (bytes are sent as they are)."""
    url = f"{host.url}/admin/clock"
    if body is None:
        async with http.get(url) as resp:
            return resp.status, await resp.json()
    data = body if isinstance(body, bytes) else None
    async with http.post(url, data=data, json=None if data is not None else body) as resp:
        return resp.status, await resp.json()


async def start(http: aiohttp.ClientSession, host: LocalHost, name: str, payload: Any) -> dict:
    async with http.post(f"{host.url}{API}/orchestrators/{name}", json=payload) as resp:
        assert resp.status == 202, await resp.text()
        return await resp.json()


def test_durations_are_iso_8601_without_years_or_months():
    assert parse_duration("PT72H") == timedelta(hours=72)
    assert parse_duration("P1DT2H30M") == timedelta(days=1, hours=2, minutes=30)
    assert parse_duration("P2W") == timedelta(weeks=2) and parse_duration("PT0.5S") == timedelta(seconds=0.5)
    for bad in ("72h", "P", "PT", "P1Y", "P1M", "-PT1H", "P1DT"):
        with pytest.raises(ClockError, match="ISO-8601 duration"):
            parse_duration(bad)


async def test_a_real_clock_shows_itself_and_refuses_to_move(host, http):
    code, body = await clock_call(http, host)
    assert code == 200 and body["mode"] == "real" and body["next_due"] is None
    assert abs(datetime.fromisoformat(body["now"]) - datetime.now(UTC)) < timedelta(minutes=1)
    code, body = await clock_call(http, host, {"advance": "PT1H"})
    assert code == 409 and "real time" in body["error"] and "--virtual-time" in body["error"]


async def test_manual_clock_moves_only_when_told_and_names_bad_requests(azurite_connstr, hub, http):
    clock = VirtualClock("manual", start=T0)
    async with LocalHost(VT_APP, port=0, storage=azurite_connstr, hub_name=hub, clock=clock) as host:
        code, body = await clock_call(http, host)
        assert (code, body["mode"], body["now"]) == (200, "manual", "2030-01-01T10:00:00Z")
        assert body["next_due"] is not None  # the 9 o'clock trigger and the sweeper are armed
        for bad, problem in [
            (b"{not json", "not JSON"),
            ({}, "one of"),
            ({"advance": "PT1H", "to": "2031-01-01T00:00:00Z"}, "one of"),
            ({"advance": "72 hours"}, "invalid ISO-8601 duration '72 hours'"),
            ({"advance": 5}, '"advance" must be an ISO-8601 duration'),
            ({"to": "tomorrow"}, "invalid time 'tomorrow'"),
            ({"to": "2029-12-31T00:00:00Z"}, "backwards"),
        ]:
            code, body = await clock_call(http, host, bad)
            assert code == 400 and problem in body["error"], (bad, body)
        code, body = await clock_call(http, host)
        assert body["now"] == "2030-01-01T10:00:00Z"  # nothing moved it
        code, body = await clock_call(http, host, {"to": "2030-01-01T10:30:00+00:00"})
        assert (code, body["now"]) == (200, "2030-01-01T10:30:00Z")


async def test_a_daily_trigger_fires_once_per_advanced_day_and_the_clock_stays_with_its_hub(
    azurite_connstr, hub, http
):
    clock = VirtualClock("manual", start=T0)
    async with LocalHost(VT_APP, port=0, storage=azurite_connstr, hub_name=hub, clock=clock) as host:
        code, _ = await clock_call(http, host, {"advance": "PT22H"})  # 08:00 the next day
        assert code == 200 and (await read_state(http, host.url, "Ticks", "nine"))[0] == 404
        for day in (1, 2, 3):
            code, body = await clock_call(http, host, {"advance": "P1D"})
            assert code == 200
            await host.wait_idle()
            assert await read_state(http, host.url, "Ticks", "nine") == (200, day), body
        now = (await clock_call(http, host))[1]["now"]
        assert now == "2030-01-05T08:00:00Z"
    async with LocalHost(
        VT_APP, port=0, storage=azurite_connstr, hub_name=hub, clock=VirtualClock("manual")
    ) as host:
        assert (await clock_call(http, host))[1]["now"] == now  # a restart keeps it
        assert await read_state(http, host.url, "Ticks", "nine") == (200, 3)
    with pytest.raises(ClockKindMismatch, match="keeps virtual time .* --fresh"):
        async with LocalHost(VT_APP, port=0, storage=azurite_connstr, hub_name=hub):
            pass


async def test_a_real_hub_refuses_virtual_time(azurite_connstr, hub):
    async with LocalHost(VT_APP, port=0, storage=azurite_connstr, hub_name=hub):
        pass
    with pytest.raises(ClockKindMismatch, match="keeps real time .* --fresh"):
        async with LocalHost(
            VT_APP, port=0, storage=azurite_connstr, hub_name=hub, clock=VirtualClock("auto")
        ):
            pass


async def test_auto_clock_skips_a_72_hour_timer_and_two_hours_of_retry_back_off(azurite_connstr, hub, http):
    clock = VirtualClock("auto", start=T0)
    async with LocalHost(VT_APP, port=0, storage=azurite_connstr, hub_name=hub, clock=clock) as host:
        began = time.monotonic()
        done = await wait_done(http, await start(http, host, "waits", 72), timeout=10)
        took = time.monotonic() - began
        assert done["runtimeStatus"] == "Completed", done
        woke, started = (datetime.fromisoformat(done["output"][k]) for k in ("woke", "started"))
        assert woke - started == timedelta(hours=72), done["output"]
        assert took < 5, f"a 72-hour timer took {took:.2f} s of wall time"

        done = await wait_done(http, await start(http, host, "retries", None), timeout=10)
        assert done["runtimeStatus"] == "Completed", done
        assert done["output"] == {"result": "worked at attempt 3", "hours": 2.0}
        _, body = await status(http, f"{host.url}{API}/instances/{done['instanceId']}", showHistory="true")
        stamps = [e["Timestamp"] for e in body["historyEvents"]]
        assert stamps == sorted(stamps) and stamps[-1].startswith("2030-01-04")  # 72 h + 2 h after T0


async def test_an_idle_session_expires_after_eight_advanced_days(azurite_connstr, hub, http):
    clock = VirtualClock("manual", start=T0)
    async with LocalHost(VT_APP, port=0, storage=azurite_connstr, hub_name=hub, clock=clock) as host:
        async with http.post(f"{host.url}/api/agents/Memo/run", json={"message": "remember milk"}) as resp:
            assert resp.status == 200, await resp.text()
            session = (await resp.json())["sessionId"]
        session_url = f"{host.url}/api/agents/Memo/{session}"
        async with http.get(session_url) as resp:
            history = (await resp.json())["conversation_history"]
            assert resp.status == 200 and history[0]["timestamp"].startswith("2030-01-01")
        await clock_call(http, host, {"advance": "P6D"})  # the sweeper runs, the session is 6 days idle
        await host.wait_idle()
        async with http.get(session_url) as resp:
            assert resp.status == 200
        code, body = await clock_call(http, host, {"advance": "P2D"})
        assert code == 200 and body["now"] == "2030-01-09T10:00:00Z"
        await host.wait_idle()
        async with http.get(session_url) as resp:
            assert resp.status == 404, await resp.text()


async def test_a_sigkill_keeps_the_virtual_now_and_a_real_start_is_refused_in_one_line(
    host_process, http, monkeypatch: pytest.MonkeyPatch
):
    start_host, procs = host_process
    monkeypatch.setenv(VIRTUAL_TIME_ENV, "manual")  # as `--virtual-time manual` passes it
    url = start_host(VT_APP)
    async with http.post(f"{url}/admin/clock", json={"advance": "P3D"}) as resp:
        assert resp.status == 200
        moved = (await resp.json())["now"]
    procs[-1].send_signal(signal.SIGKILL)
    procs[-1].wait()
    url = start_host(VT_APP)
    async with http.get(f"{url}/admin/clock") as resp:
        assert (await resp.json()) | {"next_due": None} == {"now": moved, "mode": "manual", "next_due": None}
    procs[-1].terminate()
    procs[-1].wait(10)
    monkeypatch.delenv(VIRTUAL_TIME_ENV)
    with pytest.raises(AssertionError, match=r"ERROR .*keeps virtual time .*--fresh"):
        start_host(VT_APP)
    assert procs[-1].wait(10) == 2


async def test_the_clock_command_reads_and_moves_the_clock_in_one_line(azurite_connstr, hub, capsys):
    clock = VirtualClock("manual", start=T0)
    async with LocalHost(VT_APP, port=0, storage=azurite_connstr, hub_name=hub, clock=clock) as host:
        assert await asyncio.to_thread(cli_main, ["clock", "--url", host.url]) == 0
        assert capsys.readouterr().out.startswith("now 2030-01-01T10:00:00Z (virtual, manual; next timer")
        assert await asyncio.to_thread(cli_main, ["clock", "advance", "PT2H", "--url", host.url]) == 0
        assert capsys.readouterr().out.startswith("now 2030-01-01T12:00:00Z")
        code = await asyncio.to_thread(cli_main, ["clock", "to", "2030-01-01T11:00:00Z", "--url", host.url])
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and "backwards" in err, err
        assert await asyncio.to_thread(cli_main, ["clock", "advance", "2h", "--url", host.url]) == 2
        assert "invalid ISO-8601 duration '2h'" in capsys.readouterr().err


def test_virtual_time_with_func_or_an_unknown_mode_is_one_line(capsys):
    assert cli_main(["up", "--virtual-time", "auto", "--host", "func"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--virtual-time needs the local host" in err
    with pytest.raises(SystemExit) as exited:
        cli_main(["up", "--virtual-time", "sometimes"])
    assert exited.value.code == 2 and "invalid choice: 'sometimes'" in capsys.readouterr().err
