"""The turn module's API (`durableagent/turns.py`) without the HTTP route: what the run route uses
and what an MCP tool call will (run one turn, get its reply), against the real registered entity."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import azure.durable_functions as df
import pytest

from durableagent import AgentFunctionApp, Polling
from durableagent._commits import COMMITS
from durableagent._run_request import RunRequest
from durableagent.streams import StreamEvent, StreamId
from durableagent.turns import RUN_OPERATION, Signalled, Turn, TurnOutcome, idempotent_session_key
from fakes import ScriptedChatClient

from .conftest import DurableClientDouble, make_agent
from .test_streams import MemoryStore


def _app(*steps: object, timeout: float = 5.0, **kwargs: Any) -> tuple[AgentFunctionApp, DurableClientDouble]:
    app = AgentFunctionApp(
        agents=[make_agent(ScriptedChatClient(steps=list(steps)))], polling=Polling(timeout=timeout), **kwargs
    )
    return app, DurableClientDouble(app)


async def test_run_returns_the_reply_and_the_session_holds_it():
    app, host = _app({"text": "Sunny."})
    turn = Turn.new("WeatherAgent", RunRequest("weather?"), session_key="s1")
    outcome = await app.turns.run(host, turn)
    assert (outcome.status, outcome.reply) == ("success", "Sunny.")
    assert outcome.body["message_count"] == 2 and outcome.body["sessionId"] == "s1"
    assert outcome.body["correlationId"] == turn.correlation_id
    assert [signal[1:3] for signal in host.signals] == [("s1", RUN_OPERATION)]
    status, state = await host.state("WeatherAgent", "s1")
    assert status == 200 and state["last_response"] == "Sunny."


async def test_a_keyed_turn_runs_once_in_the_session_its_key_derives():
    fake = ScriptedChatClient(steps=[{"text": "Once."}])
    app = AgentFunctionApp(agents=[make_agent(fake)], polling=Polling(timeout=5.0))
    host = DurableClientDouble(app)
    first = Turn.new("WeatherAgent", RunRequest("hi"), correlation_id="call-1")
    again = Turn.new("WeatherAgent", RunRequest("hi"), correlation_id="call-1")
    assert first.session == again.session
    assert first.session.key == idempotent_session_key("weatheragent", "call-1")
    one, two = await app.turns.run(host, first), await app.turns.run(host, again)
    assert one.reply == two.reply == "Once." and two.body["message_count"] == 2
    assert len(fake.requests) == 1  # the repeat is answered from the session, not run again


async def test_without_waiting_the_turn_is_accepted_and_still_runs():
    app, host = _app({"text": "Later."})
    turn = Turn.new("WeatherAgent", RunRequest("hi"), session_key="s2")
    outcome = await app.turns.run(host, turn, wait=False)
    assert outcome.status == "accepted" and outcome.reply is None
    assert outcome.body["response"] == "Agent request accepted" and outcome.body["message"] == "hi"
    await host.drain()
    status, state = await host.state("WeatherAgent", "s2")
    assert state["last_response"] == "Later."


async def test_a_reply_not_there_by_the_deadline_is_accepted_never_unavailable():
    app, host = _app({"text": "Slow.", "delay": 2.0}, timeout=0.3)
    outcome = await app.turns.run(host, Turn.new("WeatherAgent", RunRequest("hi"), session_key="s3"))
    assert outcome.status == "accepted"
    await host.drain()


async def test_a_failed_turn_is_an_error_outcome_with_its_message():
    app, host = _app({"error": "model exploded"})
    outcome = await app.turns.run(host, Turn.new("WeatherAgent", RunRequest("hi"), session_key="s4"))
    assert outcome.status == "error" and outcome.reply is None
    assert "model exploded" in outcome.body["error"]


@pytest.mark.parametrize(
    ("failure", "status"),
    [(ConnectionResetError("storage down"), "unavailable"), (TypeError("bad call"), "internal")],
)
async def test_a_signal_that_fails_is_unavailable_only_when_the_back_end_failed(failure, status):
    app, host = _app()
    host.fail_with = failure
    turn = Turn.new("WeatherAgent", RunRequest("hi"), correlation_id="k-1")
    outcome = await app.turns.run(host, turn)
    assert outcome.status == status and outcome.body["correlationId"] == "k-1"
    if status == "unavailable":
        assert "Idempotency-Key" in outcome.body["error"]  # only a keyed retry is safe
    else:
        assert outcome.body["error"].startswith("internal error: TypeError")


class _SignalRunsTheTurn(DurableClientDouble):
    """A back end that runs the whole turn before `signal_entity` returns (it may: the entity can
    start at once), so every event is handed over before the caller could subscribe after it."""

    async def signal_entity(
        self, entityId: df.EntityId, operation_name: str, operation_input: Any = None
    ) -> None:
        await super().signal_entity(entityId, operation_name, operation_input)
        await self.drain()


class _WriteOnlyStore(MemoryStore):
    """Keeps nothing readable: a reader gets only the rows handed over in this process."""

    async def read(self, stream: StreamId, after: str | None) -> list[StreamEvent]:
        return []


async def test_a_streaming_turn_subscribes_before_it_signals():
    app = AgentFunctionApp(
        agents=[make_agent(ScriptedChatClient(steps=[{"chunks": ["Sun", "ny."]}]))],
        polling=Polling(timeout=5.0),
        stream_store=_WriteOnlyStore(),
    )
    host = _SignalRunsTheTurn(app)
    turn = Turn.new("WeatherAgent", RunRequest("hi"), session_key="s5")
    signalled = await app.turns.signal(host, turn, events=True)
    assert isinstance(signalled, Signalled) and signalled.subscription is not None
    events = [chunk async for chunk in app.turns.events(host, signalled, {"status": "accepted"})]
    kinds = [block.split("\n")[0 if block.startswith("event") else 1] for block in events]
    assert kinds[0] == "event: accepted" and kinds[-1] == "event: final"
    text = "".join(e for e in events if "event: text" in e)
    assert '"Sun"' in text and '"ny."' in text, events


async def test_a_streaming_signal_that_fails_closes_its_subscription():
    app, host = _app(stream_store=MemoryStore())
    host.fail_with = ConnectionResetError("storage down")
    outcome = await app.turns.signal(host, Turn.new("WeatherAgent", RunRequest("hi")), events=True)
    assert isinstance(outcome, TurnOutcome) and outcome.status == "unavailable"


def test_a_reply_taken_from_the_turns_result_is_the_one_the_state_gives():
    """A commit of the turn alone carries `run_agent`'s result; the reply built from it must be the
    reply built from the committed state (success, failure), and anything else is read from the state."""
    import json

    from durableagent._backend import reply_body
    from durableagent.entity import turn_result
    from durableagent.state import AgentState
    from durableagent.turns import _reply_from_result

    state = AgentState()
    state.add_user_message("hi", "c1")
    ok = state.add_assistant_message("hello there", None, "c1")
    state.add_user_message("again", "c2")
    failed = state.add_error("c2", "RuntimeError: the model is down")
    ids = {"sessionId": "s", "correlationId": "c"}
    for entry, correlation in ((ok, "c1"), (failed, "c2")):
        result = json.dumps(turn_result(entry, state.message_count, None))
        replied = _reply_from_result(result, correlation)
        assert replied is not None
        assert reply_body(*replied, "msg", ids) == reply_body(entry, state.message_count, "msg", ids)
    assert _reply_from_result(json.dumps(turn_result(ok, 2, None)), "another turn") is None
    assert _reply_from_result(json.dumps({"status": "pending", "correlation_id": "c1"}), "c1") is None
    empty = {"status": "success", "response": "", "correlation_id": "c1", "message_count": 2}
    assert _reply_from_result(json.dumps(empty), "c1") is None  # "" may stand for a None content
    assert _reply_from_result(None, "c1") is None and _reply_from_result("not json", "c1") is None


def test_client_options_skip_proxy_lookups_only_for_storage_on_this_machine():
    from durableagent._tables import client_options

    azurite = (
        "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
        "BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;TableEndpoint=http://127.0.0.1:10002/devstoreaccount1;"
    )
    assert client_options(azurite) == {"use_env_settings": False}
    assert client_options("UseDevelopmentStorage=true") == {"use_env_settings": False}
    azure = "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.windows.net"
    assert client_options(azure) == {}
    mixed = "AccountName=a;AccountKey=a2V5;TableEndpoint=http://127.0.0.1:1/a;BlobEndpoint=https://a.blob.core.windows.net"
    assert client_options(mixed) == {}


class _CommittingHost(DurableClientDouble):
    """A back end whose commits are reported in this process (`_commits.COMMITS`), as the local host's."""

    URL = "http://commits.test/runtime/webhooks/durabletask/"

    def __init__(self, app: AgentFunctionApp) -> None:
        super().__init__(app)
        self._orchestration_bindings = SimpleNamespace(rpc_base_url=self.URL)

    def run_batch(self, name: str, key: str, operations: list[tuple[str, Any]]) -> dict[str, Any]:
        output = super().run_batch(name, key, operations)
        results = output["results"]
        one = results[0]["result"] if len(results) == 1 else None
        COMMITS.committed(self.URL, name, key, output["entityExists"], output["entityState"], one)
        return output


async def test_a_turn_woken_by_commits_reads_no_state_while_it_is_likely_still_running():
    """The wait reads the state itself only as a safety net (a commit it is not told of): once a
    session's turns are known to take a while (a slow model, a long history), no read comes while
    its next turn runs; each would decode the whole state for nothing."""
    app = AgentFunctionApp(
        agents=[make_agent(ScriptedChatClient(steps=[{"text": "Slow.", "delay": 0.3}] * 2))],
        polling=Polling(timeout=10.0),
    )
    host = _CommittingHost(app)
    COMMITS.serve(host.URL)
    try:
        first = await app.turns.run(host, Turn.new("WeatherAgent", RunRequest("one"), session_key="slow"))
        assert first.reply == "Slow."
        reads = host.reads
        second = await app.turns.run(host, Turn.new("WeatherAgent", RunRequest("two"), session_key="slow"))
        assert second.reply == "Slow." and second.body["message_count"] == 4
        assert host.reads == reads
    finally:
        COMMITS.stop(host.URL)
