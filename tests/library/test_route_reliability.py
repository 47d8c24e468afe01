"""The run and state routes under back-end failures, programming errors, hung storage, retries
and hostile input: every answer is JSON, and only back-end trouble is a 503."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import aiohttp
import pytest

from durableagent import AgentFunctionApp, Polling
from fakes import ScriptedChatClient

from .conftest import DurableClientDouble, make_agent


def _host(
    *steps: object, timeout: float = 5.0, **fake: object
) -> tuple[DurableClientDouble, ScriptedChatClient]:
    client = ScriptedChatClient(steps=list(steps), **fake)  # type: ignore[arg-type]
    app = AgentFunctionApp(agents=[make_agent(client)], polling=Polling(timeout=timeout))
    return DurableClientDouble(app), client


# -- which failures are "unavailable" ---------------------------------------------------------


@pytest.mark.parametrize(
    "failure",
    [
        ConnectionRefusedError("connection refused"),
        aiohttp.ClientConnectionError("server disconnected"),
        TimeoutError(),
        Exception("The operation failed with an unexpected status code 500"),
        Exception("The operation failed with an unexpected status code 503"),
    ],
)
async def test_back_end_failures_are_503_with_retry_after(failure):
    host, fake = _host()
    host.fail_with = failure
    status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": "s"})
    assert status == 503, body
    assert body["status"] == "error" and "unavailable" in body["error"] and body["correlationId"]
    assert host.last_response is not None and int(host.last_response.headers["Retry-After"]) > 0
    status, body = await host.state("WeatherAgent", "s")
    assert status == 503 and "unavailable" in body["error"]
    assert fake.requests == []


@pytest.mark.parametrize(
    "bug",
    [
        TypeError("signal_entity() got an unexpected keyword argument"),
        AttributeError("'NoneType' object has no attribute 'name'"),
        Exception("The operation failed with an unexpected status code 400"),
    ],
)
async def test_a_programming_error_is_a_500_json_logged_with_its_traceback(bug, caplog):
    host, fake = _host()
    host.fail_with = bug
    with caplog.at_level(logging.ERROR, logger="durableagent"):
        status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": "s"})
    assert status == 500, body
    assert body["status"] == "error" and type(bug).__name__ in body["error"] and body["correlationId"]
    assert "unavailable" not in body["error"]
    logged = [r for r in caplog.records if r.exc_info and r.exc_info[1] is bug]
    assert logged, caplog.records
    status, body = await host.state("WeatherAgent", "s")
    assert status == 500 and type(bug).__name__ in body["error"]
    assert fake.requests == []


async def test_a_read_that_fails_after_the_signal_was_accepted_is_a_202_not_a_503():
    """The turn is accepted (it will run): telling the caller 'unavailable' invites a duplicate."""
    host, _ = _host({"text": "late"}, timeout=0.3)
    host.read_fail_with = Exception("The operation failed with an unexpected status code 503")
    status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": "s"})
    assert status == 202 and body["statusUrl"].endswith("/WeatherAgent/s")
    await host.drain()
    host.read_fail_with = None
    _, state = await host.state("WeatherAgent", "s")
    assert state["last_response"] == "late"


# -- bounded waits ------------------------------------------------------------------------------


async def test_a_hung_signal_answers_503_within_the_timeout():
    host, fake = _host(timeout=1.2)
    host.hang_signals = True
    began = time.monotonic()
    status, body = await asyncio.wait_for(host.run("WeatherAgent", {"message": "hi"}), 10)
    elapsed = time.monotonic() - began
    assert status == 503 and "Idempotency-Key" in body["error"], body
    assert host.last_response is not None and "Retry-After" in host.last_response.headers
    assert 1.0 <= elapsed < 1.2 + 0.5
    assert fake.requests == []


async def test_hung_reads_answer_202_within_the_timeout():
    host, _ = _host({"text": "done"}, timeout=0.5)
    host.hang_reads = True
    began = time.monotonic()
    status, body = await asyncio.wait_for(host.run("WeatherAgent", {"message": "hi", "sessionId": "h"}), 10)
    assert status == 202 and body["statusUrl"].endswith("/h"), body
    assert time.monotonic() - began < 0.5 + 0.5


async def test_a_hung_state_read_answers_503():
    host, _ = _host(timeout=0.3)
    host.hang_reads = True
    status, body = await asyncio.wait_for(host.state("WeatherAgent", "h"), 10)
    assert status == 503 and "unavailable" in body["error"]


# -- idempotent retries -------------------------------------------------------------------------


async def test_a_retry_with_the_same_idempotency_key_gets_the_first_answer_and_adds_no_turn():
    host, fake = _host({"text": "first"}, {"text": "second"})
    headers = {"Idempotency-Key": "order-42"}
    first = await host.run("WeatherAgent", {"message": "hi", "sessionId": "idem"}, headers=headers)
    again = await host.run("WeatherAgent", {"message": "hi", "sessionId": "idem"}, headers=headers)
    assert first[0] == again[0] == 200
    assert first[1] == again[1]
    assert first[1]["response"] == "first" and first[1]["correlationId"] == "order-42"
    await host.drain()
    _, state = await host.state("WeatherAgent", "idem")
    assert state["message_count"] == 2 and len(fake.requests) == 1


async def test_a_keyed_retry_without_a_session_id_lands_in_the_same_session():
    host, fake = _host({"text": "only once"}, {"text": "twice?!"})
    body = {"message": "hi", "correlationId": "retry-me"}
    _, first = await host.run("WeatherAgent", body)
    _, again = await host.run("WeatherAgent", body)
    assert first["sessionId"] == again["sessionId"] and again["response"] == "only once"
    _, other = await host.run("WeatherAgent", {"message": "hi", "correlationId": "another"})
    assert other["sessionId"] != first["sessionId"] and other["response"] == "twice?!"
    assert len(fake.requests) == 2


async def test_a_retry_while_the_turn_still_runs_is_a_202_then_the_first_answer():
    host, fake = _host({"text": "slow", "delay": 0.4}, {"text": "duplicate"}, timeout=0.05)
    headers = {"Idempotency-Key": "slow-1"}
    status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": "r"}, headers=headers)
    assert status == 202
    status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": "r"}, headers=headers)
    assert status == 202 and body["correlationId"] == "slow-1"
    await host.drain()
    status, body = await host.run(
        "WeatherAgent", {"message": "hi", "sessionId": "r", "correlationId": "slow-1"}
    )
    assert (status, body["response"]) == (200, "slow")
    _, state = await host.state("WeatherAgent", "r")
    assert state["message_count"] == 2 and len(fake.requests) == 1


async def test_a_failed_turn_is_answered_as_failed_again_not_run_twice():
    host, fake = _host({"error": "model is down"}, {"text": "would be a second turn"})
    headers = {"Idempotency-Key": "f-1"}
    first = await host.run("WeatherAgent", {"message": "hi", "sessionId": "f"}, headers=headers)
    again = await host.run("WeatherAgent", {"message": "hi", "sessionId": "f"}, headers=headers)
    assert first[0] == again[0] == 500 and "model is down" in again[1]["error"]
    assert len(fake.requests) == 1


@pytest.mark.parametrize(
    ("headers", "body", "needle"),
    [
        ({"Idempotency-Key": "a"}, {"correlationId": "b"}, "differ"),
        ({"Idempotency-Key": "has space"}, {}, "Idempotency-Key"),
        ({"Idempotency-Key": "x" * 129}, {}, "Idempotency-Key"),
        ({"Idempotency-Key": "caf\u00e9"}, {}, "Idempotency-Key"),
        ({}, {"correlationId": 7}, "correlationId"),
        ({}, {"correlationId": ""}, "correlationId"),
    ],
)
async def test_bad_idempotency_keys_are_400(headers, body, needle):
    host, fake = _host()
    status, answer = await host.run("WeatherAgent", {"message": "hi", **body}, headers=headers)
    assert status == 400 and needle in answer["error"]
    assert host.signals == [] and fake.requests == []


# -- hostile input ------------------------------------------------------------------------------


def _nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "payload",
    [
        b"[" * 100_000 + b"]" * 100_000,
        b'{"message": ' + b"[" * 5_000 + b"]" * 5_000 + b"}",
        b'{"message": "hi", "response_schema": ' + b'{"items": ' * 20_000 + b"{}" + b"}" * 20_000 + b"}",
        json.dumps({"message": "hi", "response_schema": {"enum": _nested(500)}}),
        json.dumps({"message": "hi", "response_schema": {"enum": [_nested(70)]}}),
    ],
    ids=["list-100000", "message-5000", "schema-20000", "schema-500", "schema-72"],
)
async def test_deeply_nested_json_is_a_400(payload):
    host, fake = _host()
    status, body = await host.run("WeatherAgent", payload)
    assert status == 400, body
    assert body["status"] == "error" and "nest" in body["error"]
    assert host.signals == [] and fake.requests == []


async def test_a_schema_nested_within_the_limit_is_accepted():
    schema = {"type": "object", "properties": {"a": {"type": "array", "items": {"type": "number"}}}}
    host, _ = _host({"text": '{"a": [1]}'})
    status, body = await host.run("WeatherAgent", {"message": "hi", "response_schema": schema})
    assert status == 200, body


@pytest.mark.parametrize(
    "key",
    ["\U0001f600" * 247, "\U0001f600" * 129, ".", "..", "al\ud800x", "\udfff", "x" * 257],
    ids=["emoji-247", "emoji-129", "dot", "dotdot", "lone-high-surrogate", "lone-low-surrogate", "ascii-257"],
)
async def test_odd_session_ids_are_refused_with_400(key):
    host, fake = _host()
    status, body = await host.run("WeatherAgent", json.dumps({"message": "hi", "sessionId": key}))
    assert status == 400 and "sessionId" in body["error"], body
    assert host.signals == [] and fake.requests == []


async def test_state_route_refuses_dot_keys():
    host, _ = _host()
    for key in (".", ".."):
        status, body = await host.state("WeatherAgent", key)
        assert status == 400 and "session" in body["error"]


@pytest.mark.parametrize(
    "key", ["\U0001f600" * 128, "x" * 256, "a.b", "..."], ids=["emoji-128", "ascii-256", "a.b", "..."]
)
async def test_keys_at_the_limit_still_work(key):
    host, _ = _host({"text": "ok"})
    status, body = await host.run("WeatherAgent", {"message": "hi", "sessionId": key})
    assert status == 200 and body["sessionId"] == key
