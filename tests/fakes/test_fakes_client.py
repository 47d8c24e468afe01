"""ScriptedChatClient driven through a real agent_framework.Agent."""

from __future__ import annotations

import asyncio
import json
import re
import threading

import pytest
from agent_framework import Agent, ChatResponse, Message
from agent_framework.exceptions import ChatClientException

from fakes import RecordedRequest, ScriptedChatClient, ScriptError, ScriptExhaustedError, Step

TOOL_CALLS: list[str] = []


def get_weather(location: str) -> str:
    """Return canned weather for a place."""
    TOOL_CALLS.append(location)
    return f"Sunny, 22 C in {location}"


@pytest.fixture(autouse=True)
def _clear_tool_calls():
    TOOL_CALLS.clear()


async def test_scripted_text_reply():
    client = ScriptedChatClient(["Hello there!"])
    agent = Agent(client=client, name="greeter")

    response = await agent.run("hi")

    assert response.text == "Hello there!"
    assert [r.user_text for r in client.requests] == ["hi"]


async def test_tool_call_is_invoked_and_result_sent_back():
    client = ScriptedChatClient(
        [
            {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}, "call_id": "c-1"}]},
            {"text": "It is sunny."},
        ]
    )
    agent = Agent(client=client, name="weather", tools=[get_weather])

    response = await agent.run("weather in Paris?")

    assert TOOL_CALLS == ["Paris"]
    assert response.text == "It is sunny."
    first, second = client.requests
    assert first.tools == ["get_weather"]
    assert not first.after_tool
    results = [c for m in second.messages for c in m.contents if c.type == "function_result"]
    assert [(r.call_id, r.result) for r in results] == [("c-1", "Sunny, 22 C in Paris")]
    assert second.after_tool
    assert second.tool_name == "get_weather"
    assert second.tool_result == "Sunny, 22 C in Paris"


async def test_tool_call_ids_are_generated_when_missing():
    client = ScriptedChatClient(
        [{"tool_calls": [{"name": "get_weather", "arguments": {"location": "Oslo"}}]}, "done"]
    )
    agent = Agent(client=client, name="weather", tools=[get_weather])

    await agent.run("weather in Oslo?")

    calls = [c for m in client.requests[1].messages for c in m.contents if c.type == "function_call"]
    assert [c.call_id for c in calls] == ["call_1_1"]


async def test_tool_call_with_text_keeps_text():
    client = ScriptedChatClient(
        [
            {
                "text": "Let me check.",
                "tool_calls": [{"name": "get_weather", "arguments": {"location": "Rome"}}],
            },
            "Warm.",
        ]
    )
    agent = Agent(client=client, name="weather", tools=[get_weather])

    response = await agent.run("weather in Rome?")

    assert TOOL_CALLS == ["Rome"]
    assert "Let me check." in [m.text for m in response.messages]
    assert response.text.endswith("Warm.")


async def test_streaming_yields_each_chunk_as_its_own_update():
    client = ScriptedChatClient([{"chunks": ["Hel", "lo", " world"]}])
    agent = Agent(client=client, name="streamer")

    texts = [update.text async for update in agent.run("hi", stream=True) if update.text]

    assert texts == ["Hel", "lo", " world"]
    assert client.requests[0].stream is True


async def test_streaming_final_response_has_joined_text_and_usage():
    client = ScriptedChatClient([{"chunks": ["a ", "b"], "usage": {"input_tokens": 4, "output_tokens": 2}}])
    stream = Agent(client=client, name="streamer").run("hi", stream=True)

    async for _ in stream:
        pass
    response = await stream.get_final_response()

    assert response.text == "a b"
    assert response.usage_details["output_token_count"] == 2
    assert response.usage_details["total_token_count"] == 6


async def test_chunks_without_streaming_return_joined_text():
    client = ScriptedChatClient([{"chunks": ["Hel", "lo"]}])

    response = await Agent(client=client, name="a").run("hi")

    assert response.text == "Hello"
    assert client.requests[0].stream is False


async def test_streaming_tool_call_is_invoked():
    client = ScriptedChatClient(
        [
            {"tool_calls": [{"name": "get_weather", "arguments": {"location": "Lima"}}]},
            {"chunks": ["Nice", "!"]},
        ]
    )
    agent = Agent(client=client, name="weather", tools=[get_weather])

    texts = [u.text async for u in agent.run("weather in Lima", stream=True) if u.text]

    assert TOOL_CALLS == ["Lima"]
    assert texts == ["Nice", "!"]


async def test_explicit_usage_lands_on_agent_response():
    client = ScriptedChatClient(
        [{"text": "ok", "usage": {"input_tokens": 10, "output_tokens": 3, "total_tokens": 13}}]
    )

    response = await Agent(client=client, name="a").run("hi")

    assert response.usage_details["input_token_count"] == 10
    assert response.usage_details["output_token_count"] == 3
    assert response.usage_details["total_token_count"] == 13


async def test_fake_usage_is_deterministic_word_counts():
    client = ScriptedChatClient(["three little words", "three little words"])
    agent = Agent(client=client, name="a")

    first = await agent.run("one two")
    second = await agent.run("one two")

    assert first.usage_details["input_token_count"] == 2
    assert first.usage_details["output_token_count"] == 3
    assert first.usage_details["total_token_count"] == 5
    assert first.usage_details == second.usage_details


async def test_usage_is_summed_over_tool_round_trip():
    client = ScriptedChatClient(
        [
            {
                "tool_calls": [{"name": "get_weather", "arguments": {"location": "X"}}],
                "usage": {"input_tokens": 5, "output_tokens": 1},
            },
            {"text": "ok", "usage": {"input_tokens": 7, "output_tokens": 2}},
        ]
    )

    response = await Agent(client=client, name="a", tools=[get_weather]).run("weather in X")

    assert response.usage_details["input_token_count"] == 12
    assert response.usage_details["output_token_count"] == 3


async def test_error_step_raises_default_chat_client_exception():
    client = ScriptedChatClient([{"error": "model exploded"}])

    with pytest.raises(ChatClientException, match="model exploded"):
        await Agent(client=client, name="a").run("hi")


async def test_error_step_with_error_type():
    client = ScriptedChatClient([{"error": "bad input", "error_type": "ValueError"}, "recovered"])
    agent = Agent(client=client, name="a")

    with pytest.raises(ValueError, match="bad input"):
        await agent.run("hi")
    assert (await agent.run("again")).text == "recovered"


async def test_error_step_while_streaming():
    client = ScriptedChatClient([{"error": "stream broke", "error_type": "TimeoutError"}])

    with pytest.raises(TimeoutError, match="stream broke"):
        async for _ in Agent(client=client, name="a").run("hi", stream=True):
            pass


async def test_delay_sleeps_before_answering():
    client = ScriptedChatClient([{"text": "slow", "delay": 0.2}])
    loop = asyncio.get_running_loop()

    started = loop.time()
    response = await Agent(client=client, name="a").run("hi")

    assert response.text == "slow"
    assert loop.time() - started >= 0.19


async def test_callable_step_sees_the_request():
    seen: list[RecordedRequest] = []

    def shout(request: RecordedRequest) -> dict:
        seen.append(request)
        return {"text": request.user_text.upper() + " {literal}"}

    client = ScriptedChatClient([shout])

    response = await Agent(client=client, name="a").run("quiet please")

    assert response.text == "QUIET PLEASE {literal}"
    assert seen[0].number == 1


async def test_callable_step_returning_tool_call():
    def ask_tool(request: RecordedRequest) -> dict:
        city = request.user_text.rsplit(" ", 1)[-1]
        return {"tool_calls": [{"name": "get_weather", "arguments": {"location": city}}]}

    client = ScriptedChatClient(
        [ask_tool], rules=[{"when": {"after_tool": True}, "then": "Got: {tool_result}"}]
    )

    response = await Agent(client=client, name="a", tools=[get_weather]).run("weather in Kyiv")

    assert TOOL_CALLS == ["Kyiv"]
    assert response.text == "Got: Sunny, 22 C in Kyiv"


async def test_rules_with_regex_groups_and_tool_result_templates():
    client = ScriptedChatClient(
        rules=[
            {"when": {"tool": "get_weather"}, "then": {"text": "{user} => {tool_result}"}},
            {
                "when": {"user": r"weather in (?P<city>\w+)", "after_tool": False},
                "then": {"tool_calls": [{"name": "get_weather", "arguments": {"location": "{city}"}}]},
            },
        ]
    )
    agent = Agent(client=client, name="a", tools=[get_weather])

    response = await agent.run("WEATHER IN Berlin please")

    assert TOOL_CALLS == ["Berlin"]
    assert response.text == "WEATHER IN Berlin please => Sunny, 22 C in Berlin"


async def test_steps_come_before_rules_and_default_is_last():
    client = ScriptedChatClient(
        ["from step"],
        rules=[{"when": {"user": "^rule"}, "then": "from rule"}],
        default="default for {user}",
    )
    agent = Agent(client=client, name="a")

    texts = [(await agent.run(q)).text for q in ["rule 1", "rule 2", "other"]]

    assert texts == ["from step", "from rule", "default for other"]


async def test_callable_rule_condition_can_supply_variables():
    def mentions_number(request: RecordedRequest) -> dict[str, str] | None:
        found = re.search(r"\d+", request.user_text)
        return {"n": found.group(0)} if found else None

    client = ScriptedChatClient(
        rules=[{"when": mentions_number, "then": "number {n}"}, {"when": lambda r: True, "then": "no number"}]
    )
    agent = Agent(client=client, name="a")

    assert (await agent.run("pick 42")).text == "number 42"
    assert (await agent.run("pick none")).text == "no number"


async def test_offered_condition_checks_the_tools_of_the_request():
    client = ScriptedChatClient(
        rules=[{"when": {"offered": "get_weather", "after_tool": False}, "then": "I have weather"}],
        default="no tools",
    )

    with_tool = await Agent(client=client, name="a", tools=[get_weather]).run("hi")
    without = await Agent(client=client, name="b").run("hi")

    assert (with_tool.text, without.text) == ("I have weather", "no tools")


async def test_exhaustion_error_names_the_request():
    client = ScriptedChatClient(["only one"])
    agent = Agent(client=client, name="a")
    await agent.run("first question")

    with pytest.raises(ScriptExhaustedError) as caught:
        await agent.run("second question")

    message = str(caught.value)
    assert "request #2" in message
    assert "second question" in message
    assert isinstance(caught.value, ChatClientException)


def test_assert_complete_lists_unused_steps():
    client = ScriptedChatClient(
        ["used", "never said", {"tool_calls": [{"name": "get_weather", "arguments": {}}]}]
    )
    asyncio.run(Agent(client=client, name="a").run("hi"))

    with pytest.raises(AssertionError) as caught:
        client.assert_complete()

    message = str(caught.value)
    assert "2 scripted step(s)" in message
    assert "never said" in message
    assert "get_weather" in message
    assert "'used'" not in message


async def test_assert_complete_passes_when_all_steps_used():
    client = ScriptedChatClient(["a", "b"])
    agent = Agent(client=client, name="a")
    await agent.run("1")
    await agent.run("2")

    client.assert_complete()
    assert client.remaining_steps == []


async def test_recorded_request_to_dict_is_json_safe():
    client = ScriptedChatClient(
        [{"tool_calls": [{"name": "get_weather", "arguments": {"location": "Paris"}}]}, "fine"]
    )
    agent = Agent(client=client, name="a", instructions="Be brief.", tools=[get_weather])

    await agent.run("weather in Paris?", options={"temperature": 0.5})

    records = [json.loads(json.dumps(r.to_dict())) for r in client.requests]
    assert set(records[0]) == {"messages", "omitted_messages", "tools", "options", "stream"}
    assert records[0]["omitted_messages"] == 0
    assert records[0]["tools"] == ["get_weather"]
    assert records[0]["options"]["tools"] == ["get_weather"]
    assert records[0]["options"]["temperature"] == 0.5
    assert records[0]["messages"] == [
        {
            "role": "user",
            "text": "weather in Paris?",
            "contents": [{"type": "text", "text": "weather in Paris?"}],
        }
    ]
    roles = [m["role"] for m in records[1]["messages"]]
    assert roles == ["user", "assistant", "tool"]
    call = records[1]["messages"][1]["contents"][0]
    assert call == {
        "type": "function_call",
        "call_id": call["call_id"],
        "name": "get_weather",
        "arguments": {"location": "Paris"},
    }
    result = records[1]["messages"][2]["contents"][0]
    assert result == {"type": "function_result", "call_id": call["call_id"], "result": "Sunny, 22 C in Paris"}


async def test_record_keeps_only_the_latest_messages_of_a_long_conversation():
    from fakes.recording import RECORDED_MESSAGES

    client = ScriptedChatClient(default="ok")
    history = [Message(role="user", contents=[f"m{i}"]) for i in range(RECORDED_MESSAGES + 5)]
    await Agent(client=client, name="a").run(history)
    record = client.requests[0].to_dict()
    assert record["omitted_messages"] == 5
    assert [m["text"] for m in record["messages"]] == [f"m{i}" for i in range(5, RECORDED_MESSAGES + 5)]


async def test_keep_requests_bounds_the_requests_held_in_memory(tmp_path):
    record = tmp_path / "requests.jsonl"
    client = ScriptedChatClient(default="ok", record_path=record, keep_requests=2)
    agent = Agent(client=client, name="a")
    for turn in range(5):
        await agent.run(f"turn {turn}")
    assert [r.number for r in client.requests] == [4, 5]
    assert [r.user_text for r in client.requests] == ["turn 3", "turn 4"]
    assert len(record.read_text().splitlines()) == 5  # the record file still has every request
    with pytest.raises(ValueError, match="keep_requests"):
        ScriptedChatClient(default="ok", keep_requests=0)


def test_to_dict_stringifies_odd_option_values():
    class Odd:
        def __str__(self) -> str:
            return "odd!"

    request = RecordedRequest(
        messages=[Message("user", ["x"])],
        tools=[],
        options={"weird": Odd(), "nan": float("nan"), "nested": {1: (Odd(),)}, "kind": int},
        stream=False,
    )

    options = json.loads(json.dumps(request.to_dict()))["options"]

    assert options == {"weird": "odd!", "nan": "nan", "nested": {"1": ["odd!"]}, "kind": "builtins.int"}


async def test_get_response_directly_without_agent():
    client = ScriptedChatClient(["direct"])

    response = await client.get_response([Message("user", ["hello"])])

    assert isinstance(response, ChatResponse)
    assert response.text == "direct"
    assert response.usage_details["input_token_count"] == 1


def test_client_serializes_like_other_clients():
    data = ScriptedChatClient(["x"]).to_dict()

    assert data["model"] == "scripted-model"
    json.dumps(data)


def test_python_steps_are_validated_eagerly():
    with pytest.raises(ScriptError, match=r"steps\[1\].*unknown step key.*'txt'"):
        ScriptedChatClient(["ok", {"txt": "typo"}])
    with pytest.raises(ScriptError, match="unknown placeholder.*{city}"):
        ScriptedChatClient(default="hello {city}")
    with pytest.raises(ScriptError, match="does nothing"):
        Step(delay=1.0)


def test_concurrent_threads_with_own_event_loops_share_one_client():
    threads_count, runs_each = 8, 5
    client = ScriptedChatClient(
        rules=[
            {"when": {"tool": "get_weather"}, "then": "{tool_result}"},
            {
                "when": {"user": r"in (?P<city>\w+)", "after_tool": False},
                "then": {"tool_calls": [{"name": "get_weather", "arguments": {"location": "{city}"}}]},
            },
        ]
    )
    results: dict[str, list[str]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(threads_count)

    def worker(index: int) -> None:
        async def runs() -> list[str]:
            agent = Agent(client=client, name=f"agent{index}", tools=[get_weather])
            return [(await agent.run(f"weather in City{index}x{n}")).text for n in range(runs_each)]

        try:
            barrier.wait()
            results[f"t{index}"] = asyncio.run(runs())
        except BaseException as exc:  # collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    for index in range(threads_count):
        assert results[f"t{index}"] == [f"Sunny, 22 C in City{index}x{n}" for n in range(runs_each)]
    requests = client.requests
    assert len(requests) == threads_count * runs_each * 2
    assert sorted(r.number for r in requests) == list(range(1, len(requests) + 1))


def test_concurrent_threads_consume_each_step_exactly_once():
    total = 40
    client = ScriptedChatClient([f"step {n}" for n in range(total)])
    seen: list[str] = []
    lock = threading.Lock()

    def worker() -> None:
        async def runs() -> None:
            agent = Agent(client=client, name="a")
            for _ in range(total // 4):
                text = (await agent.run("go")).text
                with lock:
                    seen.append(text)

        asyncio.run(runs())

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert sorted(seen) == sorted(f"step {n}" for n in range(total))
    client.assert_complete()


async def test_chunk_delay_spaces_the_streamed_chunks():
    client = ScriptedChatClient([{"chunks": ["a", "b", "c"], "chunk_delay": 0.1}])
    loop = asyncio.get_running_loop()

    arrivals: list[tuple[str, float]] = []
    async for update in Agent(client=client, name="a").run("hi", stream=True):
        if update.text:
            arrivals.append((update.text, loop.time()))

    assert [text for text, _ in arrivals] == ["a", "b", "c"]
    gaps = [later - earlier for (_, earlier), (_, later) in zip(arrivals, arrivals[1:], strict=False)]
    assert all(gap >= 0.09 for gap in gaps)  # the model makes its tokens over time
    whole = await Agent(
        client=ScriptedChatClient([{"chunks": ["a", "b"], "chunk_delay": 0.1}]), name="a"
    ).run("hi")
    assert whole.text == "ab"


async def test_an_instructions_condition_tells_agents_with_the_same_input_apart():
    fake = ScriptedChatClient(
        rules=[
            {"when": {"instructions": "physicist"}, "then": "energy"},
            {"when": {"instructions": "chemist", "user": "ice"}, "then": "bonds"},
        ],
        default="neither",
    )
    physicist = Agent(client=fake, name="P", instructions="Answer as a Physicist.")
    chemist = Agent(client=fake, name="C", instructions="Answer as a chemist.")
    plain = Agent(client=fake, name="N")
    assert (await physicist.run("why does ice melt")).text == "energy"
    assert (await chemist.run("why does ice melt")).text == "bonds"
    assert (await chemist.run("why is the sky blue")).text == "neither"
    assert (await plain.run("why does ice melt")).text == "neither"
