"""`_mcp_tools.py`: Microsoft's function names and the arguments of an agent tool call."""

from __future__ import annotations

import json

import pytest

from durableagent._mcp_tools import function_name, parse_call


def test_function_names_follow_microsofts_rule():
    assert function_name("WeatherAgent") == "mcptool-WeatherAgent"
    assert function_name("my-agent.v2") == "mcptool-my_agent_v2"
    assert function_name("2fast") == "mcptool-agent_2fast"


def context(**arguments: object) -> str:
    return json.dumps({"name": "A", "arguments": arguments, "sessionid": None})


def test_a_call_names_its_session_by_key_or_by_session_id():
    assert parse_call("A", context(query="q")) == ("q", None, None)
    assert parse_call("A", context(query="q", sessionId="k1", correlationId="c")) == ("q", "k1", "c")
    assert parse_call("A", context(query="q", threadId="k2")) == ("q", "k2", None)
    assert parse_call("A", context(query="q", sessionId="@dafx-a@k3")) == ("q", "k3", None)
    assert parse_call("A", context(query="q", sessionId="@A@k4")) == ("q", "k4", None)


@pytest.mark.parametrize(
    ("text", "named"),
    [
        ("not json", "Invalid MCP context"),
        (context(), "'query'"),
        (context(query=3), "'query'"),
        (context(query="q", sessionId=["k"]), "'sessionId' must be a string"),
        (context(query="q", sessionId="a b"), "whitespace"),
        (context(query="q", sessionId="@B@k"), "'B'"),
        (context(query="q", correlationId=""), "'correlationId'"),
    ],
)
def test_bad_calls_say_what_is_wrong(text: str, named: str):
    with pytest.raises(ValueError) as raised:
        parse_call("A", text)
    assert named in str(raised.value)
