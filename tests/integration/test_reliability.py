"""Crashes and outages: accepted messages are applied exactly once, state is never half-written."""

from __future__ import annotations

import json
import threading
import time
import uuid
from pathlib import Path

import httpx
import pytest

from harness.azurite import Azurite
from harness.stack import FunctionHost

from .conftest import SAMPLES, wait_for_state, wait_until

pytestmark = pytest.mark.integration

DURABLE = "/runtime/webhooks/durabletask/entities/dafx-WeatherAgent"
RUN_TIMEOUT = 3.0  # DURABLEAGENT_RUN_TIMEOUT of the private stacks below


def _signal_turn(client: httpx.Client, session: str, message: str) -> int:
    """Queue a turn the way the run route's durable client does (202 = accepted and persisted).

    The Python SDK posts the JSON text of its input as a JSON string, so the body is encoded twice.
    """
    body = json.dumps({"message": message, "correlation_id": uuid.uuid4().hex})
    return client.post(f"{DURABLE}/{session}", params={"op": "run_agent"}, json=body).status_code


def _assert_each_turn_once(state: dict, messages: list[str]) -> None:
    history = state["conversation_history"]
    users = [e["content"] for e in history if e["role"] == "user"]
    assert sorted(users) == sorted(messages), users  # every message, none twice
    assert users == messages  # in the order they were accepted
    for user, reply in zip(history[::2], history[1::2], strict=True):
        assert reply["role"] == "assistant" and reply["status"] == "success"
        assert reply["correlation_id"] == user["correlation_id"]


def _user_messages(requests: list[dict]) -> list[str]:
    """The user message of each request the fake model received, in order."""
    return [request["messages"][-1]["text"] for request in requests]


def test_sigkill_with_queued_signals_and_a_running_turn(
    function_host, host_client, unique_session, chat_script
):
    # The first turn takes long enough to be killed in; the others are quick.
    messages = [f"crash message {i}" for i in range(12)]
    chat_script.set(
        {
            "rules": [
                {"when": {"user": "^crash message 0$"}, "then": {"text": "done: {user}", "delay": 3.0}}
            ],
            "default": {"text": "done: {user}", "delay": 0.05},
        }
    )
    for message in messages:
        assert _signal_turn(host_client, unique_session, message) == 202
    # Kill once the fake model has the first turn's request: that turn is running, the rest queued.
    wait_until(chat_script.requests, 30, "for the first turn to reach the model")
    assert function_host.process is not None
    function_host.process.kill()
    # The crash window was hit: at the kill one turn was running and eleven signals were pending
    # (the host is dead, so the record is complete; turns run one at a time, in order).
    assert _user_messages(chat_script.requests()) == messages[:1]
    function_host.restart()
    state = wait_for_state(
        host_client,
        "WeatherAgent",
        unique_session,
        lambda s: s["message_count"] >= 2 * len(messages),
        timeout=60,
    )
    _assert_each_turn_once(state, messages)
    # The killed turn ran again (its model call too), then every queued one, each once.
    assert _user_messages(chat_script.requests()) == messages[:1] + messages
    # And the session keeps working.
    chat_script.reset()
    reply = host_client.post(
        "/api/agents/WeatherAgent/run", json={"message": "hi", "sessionId": unique_session}
    )
    assert reply.status_code == 200 and reply.json()["message_count"] == 2 * len(messages) + 2


def _entity_rows(connection_string: str, partition: str) -> dict[str, dict]:
    """The rows of one entity in every entity table of the account, by row key."""
    from azure.data.tables import TableServiceClient

    rows: dict[str, dict] = {}
    with TableServiceClient.from_connection_string(connection_string) as service:
        for table in service.list_tables():
            if table.name.endswith("Entities"):
                client = service.get_table_client(table.name)
                query = client.query_entities("PartitionKey eq @pk", parameters={"pk": partition})
                rows.update({row["RowKey"]: dict(row) for row in query})
    return rows


def test_sigkill_during_a_turn_the_run_route_waits_for(
    function_host, host_client, unique_session, chat_script
):
    """The route's own turn on an idle session is accepted in the session's state row, not in a
    signal row (one write instead of an insert and a delete): a kill while it runs still loses
    nothing, and it is applied once after the restart."""
    chat_script.set(
        {
            "rules": [{"when": {"user": "^held turn$"}, "then": {"text": "done: {user}", "delay": 3.0}}],
            "default": {"text": "done: {user}"},
        }
    )
    assert (
        host_client.post(
            "/api/agents/WeatherAgent/run", json={"message": "first", "sessionId": unique_session}
        ).json()["message_count"]
        == 2
    )
    outcome: dict[str, BaseException | httpx.Response] = {}

    def waiting_turn() -> None:
        try:
            body = {"message": "held turn", "sessionId": unique_session}
            outcome["r"] = host_client.post("/api/agents/WeatherAgent/run", json=body)
        except httpx.HTTPError as exc:
            outcome["r"] = exc

    caller = threading.Thread(target=waiting_turn)
    caller.start()
    wait_until(lambda: "held turn" in _user_messages(chat_script.requests()), 30, "for the turn to run")
    rows = _entity_rows(function_host.storage, f"@dafx-weatheragent@{unique_session}")
    assert [key for key in rows if key.startswith("sig-")] == []  # no signal row: the state row holds it
    assert rows["state"]["held"].startswith("sig-") and rows["state"]["heldOp"] == "run_agent"
    assert function_host.process is not None
    function_host.process.kill()
    caller.join(30)
    assert isinstance(outcome["r"], httpx.HTTPError)  # the caller saw the connection drop, no answer
    function_host.restart()
    state = wait_for_state(
        host_client, "WeatherAgent", unique_session, lambda s: s["message_count"] >= 4, timeout=60
    )
    _assert_each_turn_once(state, ["first", "held turn"])
    assert _user_messages(chat_script.requests()) == ["first", "held turn", "held turn"]


@pytest.fixture
def private_stack(tmp_path: Path):
    """Azurite on fixed ports (so it can be stopped and started again) and a host on it."""
    script = tmp_path / "script.json"
    script.write_text(json.dumps({"default": {"text": "echo: {user}"}}))
    azurite = Azurite.on_fixed_ports(tmp_path / "azurite-data", log_path=tmp_path / "azurite.log").start()
    host = FunctionHost(
        SAMPLES / "weather",
        storage=azurite.connection_string,
        mode="local",
        chat_script=script,
        chat_record=tmp_path / "requests.jsonl",
        log_path=tmp_path / "host.log",
        env={"DURABLEAGENT_RUN_TIMEOUT": str(RUN_TIMEOUT)},
    ).start()
    try:
        yield azurite, host, script
    finally:
        host.stop()
        azurite.stop()


def test_azurite_outage_is_a_503_and_the_host_recovers_without_restart(private_stack):
    azurite, host, script = private_stack
    with httpx.Client(base_url=host.url, timeout=30) as client:

        def run(message: str) -> httpx.Response:
            return client.post(
                "/api/agents/WeatherAgent/run", json={"message": message, "sessionId": "outage"}
            )

        assert run("before").status_code == 200
        azurite.stop()
        down = run("while down")
        assert down.status_code == 503 and int(down.headers["Retry-After"]) > 0
        assert down.json()["status"] == "error" and "unavailable" in down.json()["error"]
        state = client.get("/api/agents/WeatherAgent/outage")
        assert state.status_code == 503 and state.json()["status"] == "error"

        azurite.start()
        after = run("after")
        assert after.status_code == 200, after.text
        history = client.get("/api/agents/WeatherAgent/outage").json()["conversation_history"]
        assert [e["content"] for e in history] == ["before", "echo: before", "after", "echo: after"]


def test_azurite_stopping_during_a_turn_leaves_no_partial_state(private_stack):
    azurite, host, script = private_stack
    script.write_text(json.dumps({"default": {"text": "slow echo: {user}", "delay": 1.0}}))
    with httpx.Client(base_url=host.url, timeout=60) as client:
        outcome: dict[str, httpx.Response] = {}
        worker = threading.Thread(
            target=lambda: outcome.setdefault(
                "r",
                client.post(
                    "/api/agents/WeatherAgent/run", json={"message": "mid-turn", "sessionId": "midturn"}
                ),
            )
        )
        worker.start()
        # Stop storage once the fake model has the turn's request: the turn is running in the entity.
        record = host.chat_record
        wait_until(lambda: record.exists() and record.read_text().strip(), 30, "for the turn to start")
        azurite.stop()
        worker.join(90)
        # The signal was accepted before storage went: the turn will run, so the answer is 202 with
        # where to look (a 503 would invite a retry that duplicates the turn).
        assert outcome["r"].status_code == 202, outcome["r"].text
        assert outcome["r"].json()["statusUrl"].endswith("/WeatherAgent/midturn")
        azurite.start()
        # The accepted signal was kept: once storage is back the turn is committed, exactly once.
        state = wait_for_state(
            client, "WeatherAgent", "midturn", lambda s: s["message_count"] >= 2, timeout=60
        )
        assert [e["content"] for e in state["conversation_history"]] == ["mid-turn", "slow echo: mid-turn"]


def test_hung_storage_answers_within_the_run_timeout(private_stack):
    """Azurite frozen (SIGSTOP): the signal step is inside DURABLEAGENT_RUN_TIMEOUT, so the route
    answers 503 with Retry-After (or 202 if the signal got through) instead of hanging."""
    import psutil

    azurite, host, script = private_stack
    assert azurite.pid is not None
    frozen = [psutil.Process(azurite.pid), *psutil.Process(azurite.pid).children(recursive=True)]
    with httpx.Client(base_url=host.url, timeout=60) as client:
        assert client.post("/api/agents/WeatherAgent/run", json={"message": "warm"}).status_code == 200
        for process in frozen:
            process.suspend()
        try:
            began = time.monotonic()
            response = client.post(
                "/api/agents/WeatherAgent/run",
                json={"message": "while frozen", "sessionId": "frozen"},
                headers={"Idempotency-Key": "frozen-1"},
            )
            elapsed = time.monotonic() - began
        finally:
            for process in frozen:
                process.resume()
    assert elapsed < RUN_TIMEOUT + 2.0, elapsed
    assert response.status_code in (202, 503), response.text
    if response.status_code == 503:
        assert int(response.headers["Retry-After"]) > 0 and "Idempotency-Key" in response.json()["error"]
    else:
        assert response.json()["statusUrl"].endswith("/WeatherAgent/frozen")


def test_a_retry_with_the_same_idempotency_key_never_adds_a_turn(host_client, unique_session):
    body = {"message": "book it", "sessionId": unique_session}
    headers = {"Idempotency-Key": f"{unique_session}-order"}
    first = host_client.post("/api/agents/WeatherAgent/run", json=body, headers=headers)
    again = host_client.post("/api/agents/WeatherAgent/run", json=body, headers=headers)
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    assert again.json() == first.json() and first.json()["correlationId"] == headers["Idempotency-Key"]
    other = host_client.post("/api/agents/WeatherAgent/run", json={**body, "correlationId": "next"})
    assert other.status_code == 200 and other.json()["message_count"] == 4
    history = host_client.get(f"/api/agents/WeatherAgent/{unique_session}").json()["conversation_history"]
    assert [e["correlation_id"] for e in history] == [headers["Idempotency-Key"]] * 2 + ["next"] * 2


def test_a_message_with_a_lone_surrogate_is_a_normal_turn_under_the_fake(
    host_client, unique_session, chat_script
):
    """The fake's request record used to fail the turn with a UnicodeEncodeError."""
    message = "al\ud800x"
    response = host_client.post(
        "/api/agents/WeatherAgent/run",
        content=json.dumps({"message": message, "sessionId": unique_session}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert [r["messages"][-1]["text"] for r in chat_script.requests()] == [message]
