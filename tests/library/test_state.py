import base64
import json
import zlib

import pytest
from agent_framework import AgentResponse, Content, Message, UsageDetails

from durableagent import SCHEMA_VERSION, AgentState
from durableagent.state import MAX_CHUNK_BYTES, RECENT_ENTRIES


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


def _long_state(turns: int) -> AgentState:
    state = AgentState()
    for turn in range(turns):
        state.add_user_message(f"q{turn}", f"c{turn}")
        if turn == turns - 1:
            state.add_error(f"c{turn}", "RuntimeError: down")
        else:
            state.add_assistant_message(
                AgentResponse(messages=[Message("assistant", [f"a{turn}"])]), f"c{turn}"
            )
    return state


def test_long_history_folds_older_entries_into_text_and_round_trips():
    state = _long_state(2 * RECENT_ENTRIES)
    stored = json.loads(json.dumps(state.to_dict()))
    assert len(stored["recent_history"]) <= 2 * RECENT_ENTRIES
    assert stored["earlier_history"]["count"] + len(stored["recent_history"]) == 4 * RECENT_ENTRIES
    assert all(isinstance(chunk["data"], str) for chunk in stored["earlier_history"]["chunks"])
    restored = AgentState.from_dict(stored)
    assert restored.get_state() == state.get_state()
    assert restored.message_count == 4 * RECENT_ENTRIES
    history = restored.get_state()["conversation_history"]
    assert [e["content"] for e in history[:4]] == ["q0", "a0", "q1", "a1"]
    # The newest turn failed: neither it nor its question is replayed.
    replayed = [m.text for m in restored.to_messages()]
    assert len(replayed) == 2 * (2 * RECENT_ENTRIES - 1) and replayed[-1] == f"a{2 * RECENT_ENTRIES - 2}"


def test_folded_entries_stay_findable_without_decoding_everything():
    stored = json.loads(json.dumps(_long_state(2 * RECENT_ENTRIES).to_dict()))
    state = AgentState.from_dict(stored)
    assert state.has_correlation("c0") and not state.has_correlation("c-unknown")
    assert state.reply_for("c0")["content"] == "a0"
    assert state.entry_from_end(state.message_count)["content"] == "q0"
    assert state.entry_from_end(state.message_count + 1) is None
    # The newest turn failed: the last response comes from before it.
    assert state.last_response == f"a{2 * RECENT_ENTRIES - 2}"


def test_last_response_survives_a_fold_of_only_failed_recent_turns():
    state = _long_state(2)
    for turn in range(2 * RECENT_ENTRIES):
        state.add_user_message("again", f"e{turn}")
        state.add_error(f"e{turn}", "RuntimeError: down")
    restored = AgentState.from_dict(json.loads(json.dumps(state.to_dict())))
    assert restored.last_response == "a0"


def test_new_turns_append_to_a_restored_history():
    state = AgentState.from_dict(json.loads(json.dumps(_long_state(2 * RECENT_ENTRIES).to_dict())))
    for turn in range(2 * RECENT_ENTRIES):
        state.add_user_message(f"more{turn}", f"m{turn}")
    again = AgentState.from_dict(json.loads(json.dumps(state.to_dict())))
    contents = [e["content"] for e in again.get_state()["conversation_history"]]
    assert len(contents) == 6 * RECENT_ENTRIES and len(set(contents)) == len(contents)
    assert contents[:2] == ["q0", "a0"] and contents[-1] == f"more{2 * RECENT_ENTRIES - 1}"


def _chunk(payload: bytes, count: int = 1) -> dict:
    return {"count": count, "correlation_ids": ["c"], "data": base64.b64encode(payload).decode()}


@pytest.mark.parametrize(
    "chunk",
    [
        _chunk(zlib.compress(b'[{"role": "user"}]'), count=2),
        _chunk(zlib.compress(b"[not json")),
        _chunk(zlib.compress(b"[1]")),
        _chunk(b"not compressed"),
        {"count": 1, "correlation_ids": [], "data": "%%%"},
        _chunk(zlib.compress(b"[" * 100_000 + b"]" * 100_000)),  # nesting deeper than the parser goes
        _chunk(zlib.compress(b'[{"correlation_id": "other"}]')),  # ids that do not match the entries
        _chunk(zlib.compress(b"[" + b" " * (MAX_CHUNK_BYTES + 1) + b"]")),  # unpacks to too much
    ],
)
def test_damaged_earlier_history_is_reported_when_read(chunk):
    earlier = {"count": chunk["count"], "last_response": None, "chunks": [chunk]}
    state = AgentState.from_dict(
        {"schema_version": SCHEMA_VERSION, "earlier_history": earlier, "recent_history": []}
    )
    with pytest.raises(ValueError, match="earlier_history"):
        state.get_state()


@pytest.mark.parametrize(
    "earlier",
    [
        {"count": 2, "last_response": None, "chunks": [_chunk(b"", count=1)]},
        {"count": 1, "last_response": 3, "chunks": [_chunk(b"")]},
        {"count": 0, "last_response": None, "chunks": [{"count": 0, "correlation_ids": [], "data": ""}]},
        {"count": 1, "last_response": None, "chunks": [{"count": 1, "correlation_ids": [1], "data": ""}]},
        {"count": 1, "last_response": None, "chunks": "x"},
        {"count": 1.0, "last_response": None, "chunks": [_chunk(b"")]},
        {"count": True, "last_response": None, "chunks": [_chunk(b"")]},
        "x",
    ],
)
def test_malformed_earlier_history_is_refused_on_load(earlier):
    with pytest.raises(ValueError, match="earlier_history"):
        AgentState.from_dict(
            {"schema_version": SCHEMA_VERSION, "earlier_history": earlier, "recent_history": []}
        )


def test_folded_history_is_much_smaller_than_the_entries_it_holds():
    state = _long_state(8 * RECENT_ENTRIES)
    stored = state.to_dict()
    assert stored["earlier_history"]["count"] >= 14 * RECENT_ENTRIES
    folded = json.dumps(stored["earlier_history"])
    entries = json.dumps(state.get_state()["conversation_history"][: stored["earlier_history"]["count"]])
    assert len(folded) < len(entries) / 2


def test_version_1_state_is_read_and_written_in_the_current_form():
    v1 = {
        "schema_version": 1,
        "conversation_history": _long_state(8 * RECENT_ENTRIES).get_state()["conversation_history"],
    }
    state = AgentState.from_dict(v1)
    state.add_user_message("next", "n")
    stored = state.to_dict()
    assert stored["schema_version"] == SCHEMA_VERSION
    chunks = stored["earlier_history"]["chunks"]  # folded 16 at a time, as if it had grown here
    assert len(chunks) > 1 and all(chunk["count"] == RECENT_ENTRIES for chunk in chunks)
    assert AgentState.from_dict(stored).get_state()["conversation_history"][:-1] == v1["conversation_history"]


def test_earlier_history_without_recent_history_is_refused_not_read_as_empty():
    stored = _long_state(2 * RECENT_ENTRIES).to_dict()
    del stored["recent_history"]
    with pytest.raises(ValueError, match="recent_history"):
        AgentState.from_dict(stored)


def test_entry_positions_count_from_one():
    state = _long_state(1)
    assert state.entry_from_end(1)["status"] == "error"
    with pytest.raises(ValueError, match="from 1"):
        state.entry_from_end(0)


def test_a_new_turn_changes_the_stored_text_only_after_its_folded_history():
    """Storage may then rewrite only the end of a long conversation's state."""
    state = _long_state(8 * RECENT_ENTRIES)
    before = json.dumps(state.to_dict())
    for turn in range(2):  # no fold: the recent entries stay under twice RECENT_ENTRIES
        assert len(state.to_dict()["recent_history"]) < 2 * RECENT_ENTRIES - 1
        state.add_user_message("one more", f"next{turn}")
    after = json.dumps(state.to_dict())
    first_change = next(i for i, (old, new) in enumerate(zip(before, after, strict=False)) if old != new)
    assert first_change > before.index('"recent_history"') > len(before) / 2


def test_documented_add_assistant_message_content_then_agent_response():
    state = AgentState()
    state.add_user_message("weather in Paris?", "c-1", "user")
    entry = state.add_assistant_message("It is sunny in Paris.", _response_with_tool())
    assert entry["correlation_id"] == "c-1"  # answers the newest message
    assert entry["content"] == "It is sunny in Paris." and entry["status"] == "success"
    reply = entry["agent_response"]
    assert reply["kind"] == "agent_message" and reply["text"] == "It is sunny in Paris."
    assert reply["tool_calls"][0]["name"] == "get_weather" and reply["usage"]["total_tokens"] == 15
    # The stored messages are what the next turn replays.
    assert [m.role for m in state.to_messages()] == ["user", "assistant", "tool", "assistant"]


def test_add_assistant_message_correlation_id_explicit_new_or_legacy():
    state = AgentState()
    state.add_user_message("a", "c-1")
    explicit = state.add_assistant_message("A", None, "c-other")
    assert explicit["correlation_id"] == "c-other" and "agent_response" not in explicit
    # The newest entry already has its reply: a new id rather than a second reply to c-1.
    fresh = state.add_assistant_message("B")
    assert fresh["correlation_id"] not in ("c-1", "c-other") and len(fresh["correlation_id"]) == 32
    state.add_user_message("b", "c-2")
    legacy = state.add_assistant_message(_response_with_tool(), "c-2")
    assert legacy["correlation_id"] == "c-2" and legacy["content"] == "It is sunny in Paris."
    assert legacy["agent_response"]["kind"] == "agent_message"
    assert state.reply_for("c-2") is legacy


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        ((42,), "content must be a str"),
        (("hi", "not a response"), "agent_response must be"),
        (("hi", {"text": "hi"}), "agent_response must be"),
    ],
)
def test_add_assistant_message_refuses_wrong_types(args, needle):
    state = AgentState()
    state.add_user_message("q", "c")
    with pytest.raises(TypeError, match=needle):
        state.add_assistant_message(*args)
    assert state.message_count == 1


def test_add_user_message_takes_role_positionally():
    state = AgentState()
    entry = state.add_user_message("be brief", "c", "system")
    assert entry["role"] == "system"


@pytest.mark.parametrize("turns", [0, 1, RECENT_ENTRIES, 3 * RECENT_ENTRIES + 1])
def test_the_stored_text_is_the_json_of_the_stored_form(turns):
    """`to_json` (chunks encoded once) writes exactly what `json.dumps(to_dict())` would, also for a
    restored and a forked state and after more turns fold more entries (texts made before reused)."""
    state = _long_state(turns) if turns else AgentState()
    assert state.to_json() == json.dumps(state.to_dict())
    restored = AgentState.from_dict(json.loads(state.to_json()))
    restored.forked_from = {"session": "origin \u00e9", "turns": 2}
    restored.fork_failures = [{"fork_id": "f", "error": 'quote " and \\ backslash'}]
    for n in range(RECENT_ENTRIES + 1):
        restored.add_user_message(f"more {n}", f"m{n}")
        restored.add_assistant_message(f"reply {n}", correlation_id=f"m{n}")
        assert restored.to_json() == json.dumps(restored.to_dict())
    assert AgentState.from_dict(json.loads(restored.to_json())).get_state() == restored.get_state()
