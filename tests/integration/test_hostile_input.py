"""Property-based hostile input over real HTTP: never a 5xx, always a JSON error, sessions intact."""

from __future__ import annotations

import json
import os
import unicodedata

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from .conftest import run

pytestmark = pytest.mark.integration

SETTINGS = settings(
    max_examples=int(os.environ.get("HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
    database=None,
    derandomize=os.environ.get("HYPOTHESIS_RANDOM") is None,
)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)
# Response schemas whose validity the test knows (judging any schema would take a meta-validator).
VALID_SCHEMAS = [{}, {"type": "object"}, {"type": "object", "properties": {"a": {"type": "string"}}}]
INVALID_SCHEMAS = [{"type": 5}, {"type": "no-such-type"}, {"required": "a"}, {"properties": []}]
# Each field is hostile (any JSON) or plausible, so valid and invalid bodies both come up often.
run_bodies = json_values | st.fixed_dictionaries(
    {"message": json_values | st.text(max_size=30)},
    optional={
        "sessionId": json_values | st.text(max_size=30),
        "role": json_values | st.sampled_from(["user", "system", "assistant", "User"]),
        "enable_tool_calls": json_values | st.booleans(),
        "response_schema": st.sampled_from(VALID_SCHEMAS + INVALID_SCHEMAS)
        | st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=10)
        | st.lists(json_values, max_size=2),
    },
)
KNOWN_FIELDS = {"message", "sessionId", "sessionKey", "role", "enable_tool_calls", "response_schema"}
KEY_FORBIDDEN = set("/?#@%\\")


@pytest.fixture
def canary(host_client, unique_session):
    """A session with one turn; every hostile test checks it is unchanged afterwards."""
    assert (
        run(host_client, "WeatherAgent", {"message": "hello", "sessionId": unique_session}).status_code == 200
    )
    before = host_client.get(f"/api/agents/WeatherAgent/{unique_session}").json()
    yield unique_session
    # Signals sent to the canary are applied asynchronously. A session applies its operations one at
    # a time in arrival order, so once a turn sent after them has its answer, all of them have been
    # applied: the canary must then hold its first turn plus this one, and nothing else.
    barrier = run(host_client, "WeatherAgent", {"message": "barrier", "sessionId": unique_session})
    assert barrier.status_code == 200, barrier.text
    after = host_client.get(f"/api/agents/WeatherAgent/{unique_session}").json()
    history = after["conversation_history"]
    assert history[:-2] == before["conversation_history"]
    barrier_turn = [(entry["role"], entry["content"]) for entry in history[-2:]]
    assert barrier_turn[0] == ("user", "barrier") and barrier_turn[1][0] == "assistant"
    assert after["message_count"] == before["message_count"] + 2


def _valid_session_key(key: object) -> bool:
    """The documented rules: a non-empty string of at most 256 UTF-16 code units, not '.' or '..',
    without lone surrogates, '/', '?', '#', '@', '%', backslash, whitespace or control characters."""
    if not isinstance(key, str) or key in ("", ".", ".."):
        return False
    if any(0xD800 <= ord(char) <= 0xDFFF for char in key):
        return False
    if sum(2 if ord(char) > 0xFFFF else 1 for char in key) > 256:
        return False
    return not any(
        char in KEY_FORBIDDEN or char.isspace() or unicodedata.category(char) == "Cc" for char in key
    )


def _expected_valid(body: object) -> bool:
    """Whether the run route must accept `body`, from the documented rules written out here (never
    by calling the validator under test). Generated bodies nest at most 12 levels and stay far
    below the size limits, so depth and size never decide."""
    if not isinstance(body, dict) or set(body) - KNOWN_FIELDS:
        return False
    message = body.get("message")
    if not isinstance(message, str) or not message.strip():
        return False
    if "sessionId" in body and "sessionKey" in body and body["sessionId"] != body["sessionKey"]:
        return False
    key = body.get("sessionId", body.get("sessionKey"))
    if key is not None and not _valid_session_key(key):
        return False
    if body.get("role", "user") not in ("user", "system"):
        return False
    if not isinstance(body.get("enable_tool_calls", True), bool):
        return False
    schema = body.get("response_schema")
    if isinstance(schema, dict):
        assume(schema in VALID_SCHEMAS or schema in INVALID_SCHEMAS)  # not one the test can judge
        return schema in VALID_SCHEMAS
    return schema is None


def _assert_json_error(response) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text[:300])
    assert response.json()["error"]


@SETTINGS
@given(body=run_bodies)
def test_random_json_on_the_run_route(host_client, canary, body):
    if isinstance(body, dict) and "sessionId" not in body:
        body = {**body, "sessionId": f"{canary}-other"}  # valid bodies must not touch the canary
    if isinstance(body, dict) and body.get("sessionId") == canary:
        body = {**body, "sessionId": f"{canary}-x"}
    response = host_client.post("/api/agents/WeatherAgent/run", content=json.dumps(body))
    if _expected_valid(body):
        assert response.status_code == 200, response.text
    else:
        _assert_json_error(response)
        assert response.json()["status"] == "error"


@SETTINGS
@given(raw=st.binary(max_size=200))
def test_random_bytes_on_the_run_route(host_client, canary, raw):
    response = host_client.post("/api/agents/WeatherAgent/run", content=raw)
    try:
        valid = _expected_valid(json.loads(raw.decode("utf-8")))
    except (UnicodeDecodeError, ValueError):
        valid = False
    if valid:
        assert response.status_code == 200
    else:
        _assert_json_error(response)


@SETTINGS
@given(agent=st.text(min_size=1, max_size=20), key=st.text(min_size=1, max_size=40))
def test_odd_agents_and_session_keys(host_client, canary, agent, key):
    from urllib.parse import quote

    path_agent, path_key = quote(agent, safe=""), quote(key, safe="")
    run_response = host_client.post(f"/api/agents/{path_agent}/run", json={"message": "hi", "sessionId": key})
    assert run_response.status_code < 500, run_response.text
    state = host_client.get(f"/api/agents/{path_agent}/{path_key}")
    assert state.status_code < 500, state.text
    if state.status_code >= 400:
        assert state.headers["content-type"].startswith("application/json")


@SETTINGS
@given(op=st.text(max_size=20), key=st.text(min_size=1, max_size=40), body=st.binary(max_size=100))
def test_durable_http_api_with_odd_operations_keys_and_bodies(host_client, canary, op, key, body):
    from urllib.parse import quote

    base = "/runtime/webhooks/durabletask/entities"
    for name in ("dafx-WeatherAgent", "no-such-entity"):
        response = host_client.post(f"{base}/{name}/{quote(key, safe='')}", params={"op": op}, content=body)
        assert response.status_code < 500, response.text
        if response.status_code >= 400:
            assert response.json()["error"]
    # Whatever those signals did, the app's state route still answers with JSON, never a 5xx.
    state = host_client.get(f"/api/agents/WeatherAgent/{quote(key, safe='')}")
    assert state.status_code < 500
    assert state.status_code < 400 or state.json()["error"]
    # Unknown operations and bad inputs sent to the canary itself change nothing.
    response = host_client.post(f"{base}/dafx-WeatherAgent/{canary}", params={"op": op or "x"}, content=body)
    assert response.status_code < 500


def test_huge_bodies_are_refused_with_413(host_client, canary):
    huge = b'{"message": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    response = host_client.post("/api/agents/WeatherAgent/run", content=huge)
    assert response.status_code == 413 and response.json()["error"]
    response = host_client.post(
        f"/runtime/webhooks/durabletask/entities/dafx-WeatherAgent/{canary}",
        params={"op": "run_agent"},
        content=huge,
    )
    assert response.status_code == 413 and response.json()["error"]


def _nested_bytes(depth: int, kind: str) -> bytes:
    """JSON nested `depth` levels, built as bytes (json.dumps itself would recurse too deep)."""
    if kind == "list":
        return b"[" * depth + b"1" + b"]" * depth
    return b'{"a": ' * depth + b"1" + b"}" * depth


@SETTINGS
@given(
    depth=st.integers(min_value=65, max_value=30_000),
    kind=st.sampled_from(["list", "dict"]),
    where=st.sampled_from(["body", "message", "response_schema", "sessionId"]),
)
def test_deeply_nested_json_is_a_400_json_error(host_client, canary, depth, kind, where):
    """Never a 500/RecursionError, whatever nests and how deep (the limit is 64 levels)."""
    nested = _nested_bytes(depth, kind)
    if where == "body":
        body = nested
    elif where == "response_schema":
        body = b'{"message": "hi", "sessionId": "%s-n", "response_schema": {"items": %s}}' % (
            canary.encode(),
            nested,
        )
    else:
        body = b'{"message": "hi", "%s": %s}' % (where.encode(), nested)
    response = host_client.post("/api/agents/WeatherAgent/run", content=body)
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert response.json()["status"] == "error" and "nest" in response.json()["error"]


odd_session_ids = st.one_of(
    # Past 256 UTF-16 code units once characters outside the BMP count twice.
    st.text(st.characters(min_codepoint=0x1F300, max_codepoint=0x1F6FF), min_size=129, max_size=300),
    st.sampled_from([".", ".."]),
    st.tuples(
        st.text(max_size=5), st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), st.text(max_size=5)
    ).map("".join),
)


@SETTINGS
@given(key=odd_session_ids)
def test_odd_session_ids_are_refused_with_400(host_client, canary, key):
    response = host_client.post(
        "/api/agents/WeatherAgent/run",
        content=json.dumps({"message": "hi", "sessionId": key}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400, (response.status_code, response.text[:300])
    assert "sessionId" in response.json()["error"]


@SETTINGS
@given(key=st.text(st.characters(min_codepoint=0x1F300, max_codepoint=0x1F6FF), min_size=100, max_size=128))
def test_long_ids_outside_the_bmp_within_the_limit_work_end_to_end(host_client, canary, key):
    from urllib.parse import quote

    response = host_client.post("/api/agents/WeatherAgent/run", json={"message": "hi", "sessionId": key})
    assert response.status_code == 200, response.text
    state = host_client.get(f"/api/agents/WeatherAgent/{quote(key, safe='')}")
    assert state.status_code == 200 and state.json()["sessionId"] == key


fork_bodies = json_values | st.fixed_dictionaries(
    {"turn": json_values | st.integers(min_value=-2, max_value=3)},
    optional={"session_id": json_values | st.text(max_size=20)},
)


def _fork_expected_valid(body: object, source: str) -> bool:
    """Whether the fork route must copy: the documented rules written out (the canary has 1 turn)."""
    if not isinstance(body, dict) or set(body) - {"turn", "session_id", "sessionId"}:
        return False
    turn = body.get("turn")
    if type(turn) is not int or turn != 1:
        return False
    target = body.get("session_id")
    return target is None or (_valid_session_key(target) and target != source)


@SETTINGS
@given(body=fork_bodies)
def test_random_json_on_the_fork_route(host_client, canary, body):
    """Never a 5xx; a valid body forks the canary (or meets a session of that id: 409); the canary
    itself never changes (checked by the fixture)."""
    from urllib.parse import quote

    response = host_client.post(f"/api/agents/WeatherAgent/{canary}/fork", content=json.dumps(body))
    if _fork_expected_valid(body, canary):
        assert response.status_code in (201, 409), response.text
        if response.status_code == 201:
            target = response.json()["sessionId"]
            copy = host_client.get(f"/api/agents/WeatherAgent/{quote(target, safe='')}").json()
            assert copy["message_count"] == 2 and copy["forked_from"]["session_id"] == canary
        else:
            assert "already exists" in response.json()["error"]
    else:
        _assert_json_error(response)
