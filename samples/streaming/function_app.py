"""WeatherAgent that streams its replies as Server-Sent Events, on Azure and offline.

`http_streams=True` serves every route through the HTTP streams extension
(`azurefunctions-extensions-http-fastapi`, in requirements.txt; `PYTHON_ENABLE_INIT_INDEXING=1`
in the app settings), so `POST /api/agents/WeatherAgent/run` with `Accept: text/event-stream`
sends each chunk as the model produces it. Offline: `python -m harness host samples/streaming`
with a fake script whose steps have `chunks`.
"""

import os

from agent_framework import Agent
from agent_framework.openai import OpenAIChatClient
from azure.identity import DefaultAzureCredential

from durableagent import AgentFunctionApp


def get_weather(location: str) -> str:
    """Get the current weather for a city (simulated)."""
    return f"{('sunny', 'cloudy', 'rainy')[len(location) % 3]}, {len(location) + 10} C in {location}"


def chat_client() -> OpenAIChatClient:
    """Azure OpenAI from the app settings (API key if given, else Entra ID)."""
    key = os.environ.get("AZURE_OPENAI_API_KEY")
    return OpenAIChatClient(
        model=os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "gpt-4o-mini"),
        azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"],
        api_key=key,
        credential=None if key else DefaultAzureCredential(),
    )


agent = Agent(
    client=chat_client(), name="WeatherAgent", instructions="Answer weather questions.", tools=[get_weather]
)
app = AgentFunctionApp(agents=[agent], http_streams=True)
