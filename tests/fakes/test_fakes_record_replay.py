"""Recording real OpenAI clients (over HTTP, against a local OpenAI-compatible server), replaying offline."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_framework import Agent, Message
from agent_framework.openai import OpenAIChatClient, OpenAIChatCompletionClient

from fakes import (
    RecordingChatClient,
    ReplayMismatchError,
    ScriptedChatClient,
    load_script,
    read_recorded,
    start_recording,
)
from tests.openai_server import LocalOpenAI, ModelReply

CLIENTS = [OpenAIChatClient, OpenAIChatCompletionClient]


def get_weather(location: str) -> str:
    """The weather in a city."""
    return f"rainy, 12 C in {location}"


@pytest.fixture
def model() -> Iterator[LocalOpenAI]:
    server = LocalOpenAI().start()
    yield server
    server.stop()


def weather_agent(client: object) -> Agent:
    return Agent(client=client, name="WeatherAgent", instructions="Be brief.", tools=[get_weather])


class Conversation:
    """Turns the way the durable entity makes them: the whole history sent each time."""

    def __init__(self, agent: Agent, stream: bool) -> None:
        self.agent, self.stream, self.history = agent, stream, []

    async def say(self, text: str):
        messages = [*self.history, Message(role="user", contents=[text])]
        if self.stream:
            response = await self.agent.run(messages, stream=True).get_final_response()
        else:
            response = await self.agent.run(messages)
        self.history = [*messages, *response.messages]
        return response


def summary(response) -> tuple:
    calls = [
        (c.name, c.call_id, json.loads(c.arguments) if isinstance(c.arguments, str) else c.arguments)
        for m in response.messages
        for c in m.contents
        if c.type == "function_call"
    ]
    usage = {k: response.usage_details.get(k) for k in ("input_token_count", "output_token_count")}
    return response.text, calls, usage


async def record_weather_chat(model: LocalOpenAI, client_class, path: Path, stream: bool) -> list[tuple]:
    model.queue(
        ModelReply(tool_calls=(("get_weather", {"location": "Oslo"}),), usage=(30, 5)),
        ModelReply(text="Rainy in Oslo, {bring} an umbrella.", usage=(41, 9)),
        ModelReply(text="You're welcome!", usage=(52, 4)),
    )
    start_recording(path)
    live = RecordingChatClient(client_class(model="gpt-test", api_key="x", base_url=model.base_url), path)
    chat = Conversation(weather_agent(live), stream)
    return [summary(await chat.say("Weather in Oslo?")), summary(await chat.say("thanks"))]


@pytest.mark.parametrize("stream", [False, True], ids=["whole", "streamed"])
@pytest.mark.parametrize("client_class", CLIENTS, ids=lambda c: c.__name__)
async def test_a_recorded_chat_replays_offline_with_the_same_text_tool_calls_and_usage(
    model, tmp_path, client_class, stream
):
    path = tmp_path / "recorded.json"
    live = await record_weather_chat(model, client_class, path, stream)
    assert len(model.requests) == 3
    model.stop()  # replay must not need the model

    fake = ScriptedChatClient.from_file(path)
    chat = Conversation(weather_agent(fake), stream)
    replayed = [summary(await chat.say("Weather in Oslo?")), summary(await chat.say("thanks"))]

    assert replayed == live
    assert live[0][0] == "Rainy in Oslo, {bring} an umbrella."  # braces are text, not templates
    assert live[0][2] == {"input_token_count": 71, "output_token_count": 14}
    fake.assert_complete()
    steps = load_script(path).steps
    assert [s.tool_calls[0].name for s in steps[:1]] == ["get_weather"]
    assert (steps[1].chunks is not None) == stream


async def test_a_departing_turn_fails_with_a_diff_of_the_first_differing_request(model, tmp_path):
    path = tmp_path / "recorded.json"
    await record_weather_chat(model, OpenAIChatClient, path, stream=False)
    fake = ScriptedChatClient.from_file(path)
    chat = Conversation(weather_agent(fake), stream=False)
    await chat.say("Weather in Oslo?")

    with pytest.raises(ReplayMismatchError) as failure:
        await chat.say("and tomorrow?")

    message = str(failure.value)
    assert message.startswith("replay departs from the recording: request #3 differs from steps[2] of ")
    assert f"--- recorded (steps[2] of {path})" in message
    assert "+++ received (request #3)" in message
    assert '-          "text": "thanks"' in message
    assert '+          "text": "and tomorrow?"' in message
    # The departed step stays unused: a cassette that requires every step reports it.
    with pytest.raises(AssertionError, match=r"1 scripted step\(s\) .* never used:\n  steps\[2\]"):
        fake.assert_complete()


async def test_the_record_file_says_which_step_answered_and_why_a_request_failed(model, tmp_path):
    path = tmp_path / "recorded.json"
    await record_weather_chat(model, OpenAIChatClient, path, stream=False)
    record = tmp_path / "requests.jsonl"
    chat = Conversation(weather_agent(ScriptedChatClient.from_file(path, record_path=record)), False)
    await chat.say("Weather in Oslo?")
    with pytest.raises(ReplayMismatchError):
        await chat.say("something else")

    lines = read_recorded(record)
    assert [line.get("answered_by") for line in lines] == ["steps[0]", "steps[1]", None]
    assert lines[2]["error"].startswith("ReplayMismatchError: replay departs from the recording")


async def test_concurrent_conversations_record_whole_steps_and_replay_in_either_order(model, tmp_path):
    path = tmp_path / "recorded.json"
    start_recording(path)
    model.queue(*[f"answer {i}" for i in range(8)])
    live = RecordingChatClient(OpenAIChatClient(model="m", api_key="x", base_url=model.base_url), path)
    agent = weather_agent(live)
    questions = [f"question {i}" for i in range(8)]
    await asyncio.gather(*(agent.run(q) for q in questions))

    recorded = json.loads(path.read_text())["steps"]
    assert len(recorded) == 8
    assert sorted(s["request"]["messages"][0]["contents"][0]["text"] for s in recorded) == questions
    assert not list(tmp_path.glob("*.tmp"))

    fake = ScriptedChatClient.from_file(path)
    by_question = {s["request"]["messages"][0]["contents"][0]["text"]: s["text"] for s in recorded}
    replay_agent = weather_agent(fake)
    for question in reversed(questions):  # the opposite order still finds each recorded answer
        assert (await replay_agent.run(question)).text == by_question[question]
    fake.assert_complete()


async def test_a_failed_live_call_is_recorded_and_fails_the_same_way_on_replay(model, tmp_path):
    path = tmp_path / "recorded.json"
    start_recording(path)  # nothing queued: the local model answers HTTP 500
    live = RecordingChatClient(
        OpenAIChatCompletionClient(model="m", api_key="x", base_url=model.base_url), path
    )
    with pytest.raises(Exception) as live_error:
        await weather_agent(live).run("hello")
    model.stop()

    with pytest.raises(Exception) as replay_error:
        await weather_agent(ScriptedChatClient.from_file(path)).run("hello")
    assert type(replay_error.value) is type(live_error.value)
    assert "no reply queued" in str(replay_error.value)


def test_a_recording_must_be_json(tmp_path):
    from fakes import ScriptError

    with pytest.raises(ScriptError, match=r"name it \*\.json"):
        start_recording(tmp_path / "recorded.toml")


def test_writers_in_several_processes_add_whole_steps(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "recorded.json"
    start_recording(path)
    writer = (
        "import sys\n"
        "from fakes.recorder import ScriptFile\n"
        "script = ScriptFile.for_path(sys.argv[1])\n"
        "for i in range(40):\n"
        "    script.append({'text': f'{sys.argv[2]}-{i}'})\n"
    )
    procs = [subprocess.Popen([sys.executable, "-c", writer, str(path), name]) for name in "ab"]
    assert [proc.wait(60) for proc in procs] == [0, 0]

    texts = [step.text for step in load_script(path).steps]
    assert sorted(texts) == sorted(f"{name}-{i}" for name in "ab" for i in range(40))
    assert [t for t in texts if t.startswith("a-")] == [f"a-{i}" for i in range(40)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recorded.json"]  # no lock or temp files


def test_a_client_that_is_not_a_base_chat_client_is_not_wrapped(tmp_path):
    class Duck:
        def get_response(self, *args, **kwargs):
            raise NotImplementedError

    with pytest.raises(TypeError, match="only a BaseChatClient can be recorded"):
        RecordingChatClient(Duck(), tmp_path / "recorded.json")
