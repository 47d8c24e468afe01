"""A weather agent on the real OpenAI client, pointed at an OpenAI-compatible server by its settings.

The record-and-replay tests run it with `--live --record` against a local server, then with
`--script` and no server at all.
"""

import os

from agent_framework import Agent
from agent_framework.openai import OpenAIChatClient

from durableagent import AgentFunctionApp


def get_weather(location: str) -> str:
    """The current weather in a city."""
    return f"rainy, 12 C in {location.strip()}"


weather_agent = Agent(
    client=OpenAIChatClient(
        model=os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "gpt-test"),
        api_key="local",
        # Unset when replaying: nothing listens there, and the recording answers instead.
        base_url=os.environ.get("AZURE_OPENAI_ENDPOINT", "http://127.0.0.1:9/v1"),
    ),
    name="WeatherAgent",
    instructions="Answer weather questions with get_weather.",
    tools=[get_weather],
)

app = AgentFunctionApp(agents=[weather_agent])
