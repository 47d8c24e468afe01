"""Session lifecycle routes: list an agent's sessions, delete one (issue 12, part 3)."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest

from durableagent import AgentFunctionApp, Polling
from durableagent._sessions import CONTINUATION_HEADER, ListingError, entity_lister
from fakes import ScriptedChatClient

from .conftest import DurableClientDouble, make_agent


def _echo_agent(delay: float = 0.0):
    def echo(request):
        return {"text": f"echo: {request.messages[-1].text}", "delay": delay}

    return make_agent(ScriptedChatClient(rules=[{"when": lambda request: True, "then": echo}]))


async def test_sessions_are_listed_newest_first_with_counts_and_last_activity(build):
    _, host = build(_echo_agent())
    for key in ["b", "a", "c"]:
        await host.run("WeatherAgent", {"message": "hi", "sessionId": key})
    await host.run("WeatherAgent", {"message": "again", "sessionId": "a"})
    status, body = await host.sessions("WeatherAgent")
    assert status == 200, body
    assert body["agent"] == "WeatherAgent" and body["continuationToken"] is None
    assert [s["sessionId"] for s in body["sessions"]] == ["a", "c", "b"]
    assert [s["message_count"] for s in body["sessions"]] == [4, 2, 2]
    times = [s["last_activity"] for s in body["sessions"]]
    assert times == sorted(times, reverse=True) and all(times)
    assert CONTINUATION_HEADER not in host.last_response.headers


async def test_sessions_are_paged_with_a_continuation_token(build):
    _, host = build(_echo_agent())
    keys = [f"s{i:02d}" for i in range(7)]
    for key in keys:
        await host.run("WeatherAgent", {"message": "hi", "sessionId": key})
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        headers = {CONTINUATION_HEADER: token} if token else None
        status, body = await host.sessions("WeatherAgent", params={"top": "3"}, headers=headers)
        assert status == 200
        pages += 1
        seen += [s["sessionId"] for s in body["sessions"]]
        token = body["continuationToken"]
        assert host.last_response.headers.get(CONTINUATION_HEADER) == token
        if token is None:
            break
    assert pages == 3 and seen == keys[::-1]
    # The token also works as a query parameter.
    _, first = await host.sessions("WeatherAgent", params={"top": "3"})
    _, second = await host.sessions(
        "WeatherAgent", params={"top": "3", "continuationToken": first["continuationToken"]}
    )
    assert [s["sessionId"] for s in second["sessions"]] == keys[::-1][3:6]


async def test_an_agent_without_sessions_lists_none(build):
    _, host = build(_echo_agent())
    status, body = await host.sessions("weatheragent")
    assert status == 200 and body == {"agent": "WeatherAgent", "sessions": [], "continuationToken": None}


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"top": "0"}, "'top'"),
        ({"top": "x"}, "'top'"),
        ({"top": "101"}, "'top'"),
        ({"continuationToken": "%%"}, "token"),
    ],
)
async def test_bad_listing_parameters_are_400(build, params, needle):
    _, host = build(_echo_agent())
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "x"})
    status, body = await host.sessions("WeatherAgent", params=params)
    assert status == 400 and needle in body["error"]


async def test_listing_an_unknown_agent_is_404(build):
    _, host = build(_echo_agent())
    status, body = await host.sessions("Nobody")
    assert status == 404 and "Nobody" in body["error"]


async def test_listing_when_the_backend_fails_is_503(build):
    _, host = build(_echo_agent())
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "x"})
    host.read_fail_with = OSError("connection refused")
    status, body = await host.sessions("WeatherAgent")
    assert status == 503 and "unavailable" in body["error"]


def test_a_client_without_listing_or_rpc_url_cannot_list():
    with pytest.raises(ListingError):
        entity_lister(object())


async def test_delete_removes_the_session_and_it_can_start_again(build):
    fake = ScriptedChatClient(steps=[{"text": "one"}, {"text": "two"}])
    _, host = build(make_agent(fake))
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "gone"})
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "kept"})
    status, body = await host.delete("WeatherAgent", "gone")
    assert (status, body) == (204, "")
    assert (await host.state("WeatherAgent", "gone"))[0] == 404
    assert (await host.state("WeatherAgent", "kept"))[0] == 200
    _, listing = await host.sessions("WeatherAgent")
    assert [s["sessionId"] for s in listing["sessions"]] == ["kept"]
    assert (await host.delete("WeatherAgent", "gone"))[0] == 404
    # Went through the entity, as an operation.
    assert ("dafx-WeatherAgent", "gone", "delete", None) in host.signals


async def test_delete_waits_for_a_turn_in_flight(build):
    # The turn's own request may find its reply already deleted: it then answers 202 at its timeout.
    _, host = build(_echo_agent(delay=0.2), polling=Polling(timeout=1.0))
    await host.run("WeatherAgent", {"message": "first", "sessionId": "busy"})
    turn = asyncio.create_task(host.run("WeatherAgent", {"message": "second", "sessionId": "busy"}))
    while len(host.signals) < 2:
        await asyncio.sleep(0.001)
    status, _ = await host.delete("WeatherAgent", "busy")
    assert status == 204
    # The turn in flight finished whole before the delete ran; nothing of it is left behind.
    status, body = await turn
    assert status in (200, 202)
    assert (await host.state("WeatherAgent", "busy"))[0] == 404
    finished = [json.loads(r["result"]) for r in host.results if "echo: second" in (r.get("result") or "")]
    assert len(finished) == 1 and finished[0]["status"] == "success", "the turn ran whole, once"


async def test_delete_not_done_in_time_is_202(build):
    _, host = build(_echo_agent(), polling=Polling(timeout=0.05))
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "slow"})
    await host.drain()
    original = host._apply

    async def slow_apply(*args):
        await asyncio.sleep(0.3)
        await original(*args)

    host._apply = slow_apply
    status, body = await host.delete("WeatherAgent", "slow")
    assert status == 202 and body["status"] == "accepted" and body["sessionId"] == "slow"
    await host.drain()
    assert (await host.state("WeatherAgent", "slow"))[0] == 404


@pytest.mark.parametrize(("agent", "key", "status"), [("Nobody", "s", 404), ("WeatherAgent", "a b", 400)])
async def test_delete_of_unknown_agent_or_bad_id(build, agent, key, status):
    _, host = build(_echo_agent())
    got, body = await host.delete(agent, key)
    assert got == status and body["status"] == "error"
    assert host.signals == []


async def test_delete_when_the_backend_fails_is_503(build):
    _, host = build(_echo_agent())
    host.fail_with = OSError("connection refused")
    status, _ = await host.delete("WeatherAgent", "s")
    assert status == 503


async def test_entity_delete_operation_result(build):
    _, host = build(_echo_agent())
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "op"})
    output = host.run_batch("dafx-WeatherAgent", "op", [("delete", None), ("get_state", None)])
    results = [json.loads(r["result"]) for r in output["results"]]
    assert results[0] == {"status": "deleted", "message_count": 2}
    assert results[1]["message_count"] == 0
    assert output["entityExists"] is False


# -- idle expiry (session_ttl) -------------------------------------------------------------------


def _age(host, key: str, hours: float) -> None:
    """Make a session look idle for `hours`: its entries' timestamps and its last operation time."""
    ident = ("dafx-weatheragent", key)
    stored = json.loads(host.states[ident])
    old = datetime.now(UTC) - timedelta(hours=hours)
    for entry in stored["recent_history"]:
        entry["timestamp"] = old.isoformat()
    host.states[ident] = json.dumps(stored)
    host.last_operation[ident] = old.isoformat().replace("+00:00", "Z")


async def test_listing_expires_sessions_idle_past_the_ttl(build):
    _, host = build(_echo_agent(), session_ttl=timedelta(hours=1))
    for key in ["old", "fresh"]:
        await host.run("WeatherAgent", {"message": "hi", "sessionId": key})
    _age(host, "old", hours=2)
    status, body = await host.sessions("WeatherAgent")
    assert status == 200 and [s["sessionId"] for s in body["sessions"]] == ["fresh"]
    await host.drain()
    assert (await host.state("WeatherAgent", "old"))[0] == 404
    assert (await host.state("WeatherAgent", "fresh"))[0] == 200
    assert ("dafx-WeatherAgent", "old", "expire", {"idle_seconds": 3600.0}) in host.signals


async def test_expire_keeps_a_session_used_since_it_was_listed(build):
    _, host = build(_echo_agent())
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "busy"})
    _age(host, "busy", hours=2)
    # A turn lands between the sweep's listing and its signal: the entity sees it and keeps the session.
    await host.run("WeatherAgent", {"message": "again", "sessionId": "busy"})
    output = host.run_batch("dafx-WeatherAgent", "busy", [("expire", {"idle_seconds": 3600})])
    assert json.loads(output["results"][0]["result"]) == {"status": "active"}
    assert output["entityExists"] is True
    _, state = await host.state("WeatherAgent", "busy")
    assert state["message_count"] == 4


@pytest.mark.parametrize(
    "payload", [None, {}, {"idle_seconds": "1"}, {"idle_seconds": -5}, {"idle_seconds": True}]
)
async def test_expire_without_a_usable_ttl_keeps_the_session(build, payload):
    _, host = build(_echo_agent())
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "s"})
    _age(host, "s", hours=2)
    output = host.run_batch("dafx-WeatherAgent", "s", [("expire", payload)])
    assert json.loads(output["results"][0]["result"]) == {"status": "active"}
    assert output["entityExists"] is True


async def test_the_timer_sweeps_every_agent_including_ones_without_routes():
    app = AgentFunctionApp(agents=[_echo_agent()], session_ttl=timedelta(minutes=30))
    host = DurableClientDouble(app)
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "old"})
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "fresh"})
    _age(host, "old", hours=1)
    sweeper = host.functions["dafx_session_sweeper"]
    assert sweeper.get_trigger().type == "timerTrigger"
    assert sweeper.get_trigger().schedule == "0 */5 * * * *"
    await sweeper.get_user_function().client_function(timer=None, client=host)
    await host.drain()
    assert (await host.state("WeatherAgent", "old"))[0] == 404
    assert (await host.state("WeatherAgent", "fresh"))[0] == 200


def test_no_ttl_no_sweeper_and_the_ttl_must_be_positive():
    names = {f.get_function_name() for f in AgentFunctionApp().get_functions()}
    assert "dafx_session_sweeper" not in names
    with pytest.raises(ValueError, match="session_ttl"):
        AgentFunctionApp(session_ttl=timedelta(0))
