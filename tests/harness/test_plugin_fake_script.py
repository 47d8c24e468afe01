"""``@pytest.mark.fake_script`` as a user writes it: a chat recorded from the real OpenAI client (a
local OpenAI-compatible server as the live model, through a real stack), replayed in a child pytest
by the session host and by the ``fake_script`` fixture."""

from __future__ import annotations

import shutil
from pathlib import Path

import httpx
import pytest

from harness.stack import Stack
from tests.openai_server import LocalOpenAI, ModelReply

pytest_plugins = ["pytester"]

APP = Path(__file__).resolve().parents[1] / "cli" / "recording_app"

CONFTEST = f"""
import pytest
from pathlib import Path

@pytest.fixture(scope="session")
def function_host_app_dir():
    return Path({str(APP)!r})
"""

TESTS = '''
import asyncio

import pytest
from agent_framework import Agent, Message

RUN = "/api/agents/WeatherAgent/run"


def get_weather(location: str) -> str:
    """The current weather in a city."""
    return f"rainy, 12 C in {location.strip()}"


def ask(client, message, session):
    return client.post(RUN, json={"message": message, "sessionId": session})


@pytest.mark.fake_script("recorded.json", require_all_used=True)
def test_host_replays_the_whole_recording(host_client, unique_session):
    first = ask(host_client, "Weather in Bergen?", unique_session).json()["response"]
    assert first == "Rainy in Bergen: 12 C."
    assert ask(host_client, "thanks", unique_session).json()["response"] == "Anytime!"


@pytest.mark.fake_script("recorded.json", require_all_used=True)
def test_host_leaves_a_step_unused(host_client, unique_session):
    assert ask(host_client, "Weather in Bergen?", unique_session).status_code == 200


@pytest.mark.fake_script("recorded.json")
def test_host_departs_without_looking(host_client, unique_session):
    ask(host_client, "Weather in Oslo?", unique_session)


def test_without_the_marker_the_default_script_answers(host_client, unique_session):
    assert ask(host_client, "Weather in Bergen?", unique_session).json()["response"] == "default reply"


@pytest.mark.fake_script("recorded.json", require_all_used=True)
def test_in_process_agent_replays_the_recording(fake_script):
    agent = Agent(
        client=fake_script,
        name="WeatherAgent",
        instructions="Answer weather questions with get_weather.",
        tools=[get_weather],
    )

    async def chat():
        first = await agent.run([Message(role="user", contents=["Weather in Bergen?"])])
        history = [Message(role="user", contents=["Weather in Bergen?"]), *first.messages]
        second = await agent.run([*history, Message(role="user", contents=["thanks"])])
        return first.text, second.text

    assert asyncio.run(chat()) == ("Rainy in Bergen: 12 C.", "Anytime!")


def test_the_fixture_needs_the_marker(fake_script):
    pass
'''


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, azurite_exe: Path) -> Path:
    """A weather chat recorded with ``Stack(live=True, record=...)`` from the real OpenAI client."""
    folder = tmp_path_factory.mktemp("recording")
    path = folder / "recorded.json"
    model = LocalOpenAI().start()
    model.queue(
        ModelReply(tool_calls=(("get_weather", {"location": "Bergen"}),)),
        ModelReply(text="Rainy in Bergen: 12 C."),
        ModelReply(text="Anytime!"),
    )
    env = {"AZURE_OPENAI_ENDPOINT": model.base_url, "AZURE_OPENAI_CHAT_DEPLOYMENT_NAME": "gpt-test"}
    try:
        with Stack(APP, host_mode="local", live=True, record=path, env=env, progress=False) as stack:
            for message in ("Weather in Bergen?", "thanks"):
                body = {"message": message, "sessionId": "recorded"}
                reply = httpx.post(f"{stack.url}/api/agents/WeatherAgent/run", json=body, timeout=60)
                assert reply.status_code == 200, reply.text
    finally:
        model.stop()
    assert len(model.requests) == 3
    return path


@pytest.mark.integration
def test_fake_script_marker_replays_a_recording_and_checks_it_was_used(
    recorded: Path, azurite_exe: Path, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DURABLEAGENT_AZURITE", str(azurite_exe))
    pytester.makeconftest(
        CONFTEST + '\n@pytest.fixture(scope="session")\n'
        'def chat_script_default():\n    return {"default": "default reply"}\n'
    )
    pytester.makepyfile(test_cassettes=TESTS)
    shutil.copy(recorded, pytester.path / "recorded.json")

    result = pytester.runpytest_subprocess("--durableagent-host", "local", "-p", "no:randomly", "-rE")

    result.assert_outcomes(passed=5, errors=3)
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_host_leaves_a_step_unused*",
            "*require_all_used: 1 scripted step(s) of */recorded.json were never used:*",
            "*steps[[]2[]]: Step(text='Anytime!'*",
        ]
    )
    result.stdout.fnmatch_lines(
        [
            "*ERROR at teardown of test_host_departs_without_looking*",
            "*ReplayMismatchError: replay departs from the recording: request #* differs from steps[[]0[]]*",
            '*+*"text": "Weather in Oslo?"*',
        ]
    )
    result.stdout.fnmatch_lines(
        ["*ERROR at setup of test_the_fixture_needs_the_marker*", "*has no such marker*"]
    )
