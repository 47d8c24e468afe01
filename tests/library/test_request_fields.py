"""A misspelt field is named as unknown before anything else is checked (issue 20, item 10).

Checked in any other order, `{"mesage": "hi"}` answered "'message' is required": true, but it sends
the caller looking for a field they believe they sent, instead of at their typo.
"""

from __future__ import annotations

import pytest

from durableagent._run_request import RequestError, reject_unknown_fields
from fakes import ScriptedChatClient

from .conftest import make_agent


@pytest.mark.parametrize(
    ("payload", "needle"),
    [
        ({"mesage": "hi"}, "unknown field(s) 'mesage' (did you mean 'message'?)"),
        ({"Message": "hi"}, "unknown field(s) 'Message' (did you mean 'message'?)"),
        # The unknown field wins over every other problem of the body.
        ({"message": "", "sesionId": "s"}, "unknown field(s) 'sesionId' (did you mean 'sessionId'?)"),
        (
            {"message": "hi", "role": "tool", "thread": "t"},
            "unknown field(s) 'thread' (did you mean 'thread_id'?)",
        ),
        ({"message": "hi", "wait_for_reponse": False}, "(did you mean 'wait_for_response'?)"),
        ({"message": "hi", "zzz": 1}, "unknown field(s) 'zzz'; known: "),
    ],
)
async def test_run_route_names_an_unknown_field_first(build, payload, needle):
    fake = ScriptedChatClient(steps=[])
    _, host = build(make_agent(fake))
    status, body = await host.run("WeatherAgent", payload)
    assert status == 400, body
    assert body["status"] == "error" and needle in body["error"], body
    assert "is required" not in body["error"] and "must not be empty" not in body["error"]
    assert host.states == {} and fake.requests == []


async def test_fork_route_names_an_unknown_field_first(build):
    _, host = build(make_agent(ScriptedChatClient(steps=[{"text": "one"}])))
    await host.run("WeatherAgent", {"message": "hi", "sessionId": "src"})
    status, body = await host.fork("WeatherAgent", "src", {"trun": 1})
    assert status == 400, body
    assert "unknown field(s) 'trun' (did you mean 'turn'?)" in body["error"], body
    assert "is required" not in body["error"]


def test_no_suggestion_of_a_field_the_body_already_has():
    # 'message' is there; pointing the caller at it would be no help.
    with pytest.raises(RequestError) as raised:
        reject_unknown_fields({"message": "hi", "mesage": "x"}, ["message", "role"])
    assert str(raised.value) == "unknown field(s) 'mesage'; known: message, role"


def test_several_unknown_fields_are_all_named():
    with pytest.raises(RequestError) as raised:
        reject_unknown_fields({"mesage": 1, "rol": 2}, ["message", "role"])
    assert str(raised.value).startswith(
        "unknown field(s) 'mesage' (did you mean 'message'?), 'rol' (did you mean 'role'?); known:"
    )
