"""WeatherAgent on Azure Durable Functions: deploy as is, or run offline with the harness.

`python -m harness chat WeatherAgent` runs this file unmodified against a scripted fake
model; deployed, it talks to Azure OpenAI with the settings below.
"""

import os

from agent_framework import Agent
from agent_framework.openai import OpenAIChatClient
from azure.identity import DefaultAzureCredential

from durableagent import AgentFunctionApp

CONDITIONS = ("sunny", "cloudy", "rainy", "windy", "snowy")


def get_weather(location: str) -> str:
    """Get the current weather for a city (simulated, the same answer for the same city)."""
    seed = sum(ord(ch) for ch in location.strip().lower())
    return f"{CONDITIONS[seed % len(CONDITIONS)]}, {seed % 30 + 1} C in {location.strip()}"


def build_chat_client() -> OpenAIChatClient:
    """Azure OpenAI from the app settings; an API key if given, else Entra ID."""
    api_key = os.environ.get("AZURE_OPENAI_API_KEY")
    return OpenAIChatClient(
        model=os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "gpt-4o-mini"),
        azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"],
        api_key=api_key,
        credential=None if api_key else DefaultAzureCredential(),
    )


weather_agent = Agent(
    client=build_chat_client(),
    name="WeatherAgent",
    instructions="You are a friendly weather assistant. Use get_weather for any question about a city.",
    tools=[get_weather],
)

app = AgentFunctionApp(agents=[weather_agent])
