"""`harness.testing` without pytest's fixtures: a plain `with AppEnvironment(...)` runs a whole stack
(its own Azurite and local host) for one app, steers its fake model and cleans up after itself."""

from __future__ import annotations

import asyncio

import pytest

from harness.testing import AppEnvironment

pytestmark = pytest.mark.integration  # each test starts (or talks to) Azurite and a host


def test_an_environment_runs_an_app_in_a_with_block() -> None:
    with AppEnvironment(script=["hello from the script"]) as env:
        work, host = env.work_dir, env.host
        assert work is not None and host is not None and host.is_running()
        reply = env.client.run("WeatherAgent", "hi there", "env-session")
        assert reply["response"] == "hello from the script"
        assert [r["messages"][-1]["text"] for r in env.script.requests()] == ["hi there"]
        assert env.script.used_steps() == {0}

        env.script.set([{"text": "second script"}])
        env.script.clear()
        assert env.client.run("WeatherAgent", "again", "env-session")["response"] == "second script"
        assert [r["messages"][-1]["text"] for r in env.script.requests()] == ["again"]
        assert env.client.state("WeatherAgent", "env-session")["message_count"] == 4
    assert not host.is_running() and not work.exists()
    with pytest.raises(RuntimeError, match="not started"):
        env.client  # noqa: B018 - the property is what is tested


def test_an_environment_from_url_talks_to_a_running_app_without_owning_it(function_host) -> None:
    async def use() -> dict:
        async with AppEnvironment.from_url(function_host.url) as env:
            with pytest.raises(RuntimeError, match="no fake-model script"):
                env.script  # noqa: B018 - the property is what is tested
            return env.client.health()

    assert "WeatherAgent" in str(asyncio.run(use()))
    assert function_host.is_running()


def test_sleep_moves_a_manual_clock_and_an_event_after_the_deadline_finds_the_review_over() -> None:
    from datetime import timedelta
    from pathlib import Path

    from harness.client import ClientError

    app = Path(__file__).resolve().parents[2] / "samples" / "human_in_the_loop"
    with AppEnvironment(app, virtual_time="manual") as env:
        assert env.clock.mode == "manual"
        before = env.clock.now()
        approved = env.orchestrations.start("content_review", {"topic": "clocks"})
        approved.wait_for(event="TimerCreated")  # waiting for the reviewer, or 72 hours
        env.sleep("PT71H")  # the clock stands still until told: 71 hours pass, the timer is not due
        assert approved.status()["runtimeStatus"] == "Running"
        approved.raise_event("ApprovalResponse", {"approved": True})
        assert approved.wait()["output"]["status"] == "published"

        late = env.orchestrations.start("content_review", {"topic": "late"})
        late.wait_for(event="TimerCreated")
        env.sleep(timedelta(hours=73))  # past the deadline: the timeout branch has run when it returns
        assert late.status()["output"]["status"] == "timed_out"
        with pytest.raises(ClientError, match="already finished"):
            late.raise_event("ApprovalResponse", {"approved": True})
        assert env.clock.now() - before == timedelta(hours=144)
