"""The weather sample's default script, end to end with real tools."""

from __future__ import annotations

import json

import pytest
from agent_framework import Agent

from fakes import WEATHER_SCRIPT_PATH, ScriptedChatClient, load_script, weather_script

CALLS: list[tuple[str, str]] = []


def get_weather(location: str) -> str:
    """Return canned weather for a place."""
    CALLS.append(("get_weather", location))
    return f"Sunny, 22 C in {location}"


def calculate(expression: str) -> str:
    """Evaluate a tiny arithmetic expression."""
    CALLS.append(("calculate", expression))
    return "42"


@pytest.fixture(autouse=True)
def _clear_calls():
    CALLS.clear()


def test_shipped_file_is_the_script_returned_by_weather_script():
    assert WEATHER_SCRIPT_PATH.is_file()
    assert json.loads(WEATHER_SCRIPT_PATH.read_text(encoding="utf-8"))["rules"]
    assert weather_script() == load_script(WEATHER_SCRIPT_PATH)


@pytest.mark.parametrize(
    ("question", "location"),
    [
        ("What's the weather in Paris?", "Paris"),
        ("WEATHER FOR Oslo", "Oslo"),
        ("how's the weather in New York today?", "New York"),
        ("Is it raining in London?", "London"),
        ("Tell me the forecast for Cape Town, please", "Cape Town"),
    ],
)
async def test_weather_questions_call_get_weather_and_answer_from_result(question: str, location: str):
    client = ScriptedChatClient(weather_script())
    agent = Agent(client=client, name="WeatherAgent", tools=[get_weather])

    response = await agent.run(question)

    assert CALLS == [("get_weather", location)]
    assert f"Sunny, 22 C in {location}" in response.text
    assert response.usage_details["total_token_count"] > 0
    assert len(client.requests) == 2


async def test_greeting_explains_what_to_ask():
    agent = Agent(client=ScriptedChatClient(weather_script()), name="WeatherAgent", tools=[get_weather])

    response = await agent.run("Hello!")

    assert CALLS == []
    assert "weather in Paris" in response.text
    assert response.usage_details["output_token_count"] > 0


async def test_default_echoes_the_user():
    agent = Agent(client=ScriptedChatClient(weather_script()), name="WeatherAgent", tools=[get_weather])

    response = await agent.run("Tell me a joke")

    assert CALLS == []
    assert "Tell me a joke" in response.text
    assert response.usage_details is not None


async def test_weather_question_without_place_asks_for_one():
    agent = Agent(client=ScriptedChatClient(weather_script()), name="WeatherAgent", tools=[get_weather])

    response = await agent.run("What's the weather like?")

    assert CALLS == []
    assert "Which city" in response.text


@pytest.mark.parametrize(("question", "expression"), [("2+3", "2+3"), ("what is 7 times 6", "7 times 6")])
async def test_math_calls_calculate_when_offered(question: str, expression: str):
    agent = Agent(client=ScriptedChatClient(weather_script()), name="MathAgent", tools=[calculate])

    response = await agent.run(question)

    assert CALLS == [("calculate", expression)]
    assert response.text == "The answer is 42."


async def test_math_is_not_attempted_without_calculate_tool():
    agent = Agent(client=ScriptedChatClient(weather_script()), name="WeatherAgent", tools=[get_weather])

    response = await agent.run("2+3")

    assert CALLS == []
    assert '"2+3"' in response.text


async def test_weather_script_file_in_a_client_from_file():
    client = ScriptedChatClient.from_file(WEATHER_SCRIPT_PATH)
    agent = Agent(client=client, name="WeatherAgent", tools=[get_weather])

    response = await agent.run("weather in Madrid?")

    assert CALLS == [("get_weather", "Madrid")]
    assert "Madrid" in response.text
