import json

import pytest
from agent_framework import AgentResponse, Content, Message, UsageDetails

from durableagent import SCHEMA_VERSION, AgentState


def _response_with_tool() -> AgentResponse:
    return AgentResponse(
        messages=[
            Message(
                role="assistant",
                contents=[
                    Content.from_function_call(
                        call_id="c1", name="get_weather", arguments='{"location": "Paris"}'
                    )
                ],
            ),
            Message(role="tool", contents=[Content.from_function_result(call_id="c1", result="Sunny")]),
            Message(role="assistant", contents=["It is sunny in Paris."]),
        ],
        usage_details=UsageDetails(input_token_count=10, output_token_count=5),
    )


def test_assistant_entry_carries_text_tool_calls_and_usage():
    state = AgentState()
    state.add_user_message("weather in Paris?", "c-1")
    entry = state.add_assistant_message(_response_with_tool(), "c-1")
    assert entry["content"] == "It is sunny in Paris."
    assert entry["agent_response"]["tool_calls"] == [
        {"call_id": "c1", "name": "get_weather", "arguments": {"location": "Paris"}, "result": "Sunny"}
    ]
    assert entry["agent_response"]["usage"] == {
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "total_tokens": 15,
    }
    assert state.message_count == 2
    assert state.last_response == "It is sunny in Paris."


def test_round_trip_through_json_keeps_messages_replayable():
    state = AgentState("Agent")
    state.add_user_message("weather in Paris?", "c-1")
    state.add_assistant_message(_response_with_tool(), "c-1")
    data = json.loads(json.dumps(state.to_dict()))
    assert data["schema_version"] == SCHEMA_VERSION
    restored = AgentState.from_dict(data)
    assert restored.get_state() == state.get_state()
    messages = restored.to_messages()
    assert [m.role for m in messages] == ["user", "assistant", "tool", "assistant"]
    assert messages[1].contents[0].name == "get_weather"
    assert messages[2].contents[0].result == "Sunny"


def test_failed_turns_are_kept_but_not_replayed():
    state = AgentState()
    state.add_user_message("boom?", "c-1")
    state.add_error("c-1", "RuntimeError: model down")
    state.add_user_message("hello", "c-2")
    assert state.message_count == 3
    assert state.reply_for("c-1")["status"] == "error"
    assert [m.text for m in state.to_messages()] == ["hello"]
    assert state.last_response is None


def test_reset_clears_history():
    state = AgentState()
    state.add_user_message("hi", "c")
    state.reset()
    assert state.get_state()["conversation_history"] == []


def test_migrates_unversioned_state():
    old = {
        "history": [
            {"role": "user", "content": "hi", "correlation_id": "c"},
            {"role": "assistant", "content": "hello", "correlation_id": "c"},
        ]
    }
    state = AgentState.from_dict(old)
    assert state.get_state()["schema_version"] == SCHEMA_VERSION
    assert state.reply_for("c")["status"] == "success"
    assert state.last_response == "hello"


@pytest.mark.parametrize(
    "data",
    [{"schema_version": SCHEMA_VERSION + 1}, {"schema_version": 1, "conversation_history": "x"}, [1, 2]],
)
def test_refuses_state_it_cannot_read(data):
    with pytest.raises(ValueError):
        AgentState.from_dict(data)


def test_stored_messages_are_compact_and_restore_exactly():
    state = AgentState()
    state.add_user_message("weather in Paris?", "c-1")
    entry = state.add_assistant_message(_response_with_tool(), "c-1")
    stored = json.dumps(entry["agent_response"]["messages"])
    assert "additional_properties" not in stored and '"hosted"' not in stored
    original = [m.to_dict() for m in _response_with_tool().messages]
    restored = [m.to_dict() for m in AgentState.from_dict(state.to_dict()).to_messages()[1:]]
    assert restored == original
