"""Prompt chaining: one agent drafts a tagline, then refines its own draft in the same session.

Both turns run on one durable session (`agent.create_session()`), so the second prompt is answered
with the first turn in the agent's history, and `GET /api/agents/WriterAgent/{sessionId}` shows
both. `python -m harness up --app samples/chaining` runs this file unmodified against the scripted
fake model in `fake_model.json`; deployed, it talks to Azure OpenAI with the settings below.
"""

import json
import os
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent
from agent_framework.openai import OpenAIChatClient
from azure.identity import DefaultAzureCredential

from durableagent import AgentFunctionApp


def build_chat_client() -> OpenAIChatClient:
    """Azure OpenAI from the app settings; an API key if given, else Entra ID."""
    api_key = os.environ.get("AZURE_OPENAI_API_KEY")
    return OpenAIChatClient(
        model=os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "gpt-4o-mini"),
        azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"],
        api_key=api_key,
        credential=None if api_key else DefaultAzureCredential(),
    )


writer = Agent(
    client=build_chat_client(),
    name="WriterAgent",
    instructions="You write short, memorable product taglines. Answer with the tagline only.",
)

app = AgentFunctionApp(agents=[writer])


@app.orchestration_trigger(context_name="context")
def tagline_chain(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, str]]:
    """Draft, then improve the draft: two turns of one agent on one session."""
    topic = (context.get_input() or {}).get("topic") or "durable AI agents"
    agent = app.get_agent(context, "WriterAgent")
    session = agent.create_session()
    draft = yield agent.run(f"Write a one-line tagline for {topic}.", session=session)
    better = yield agent.run(f"Improve this tagline, keep it under ten words: {draft.text}", session=session)
    return {"sessionId": session.key, "draft": draft.text, "tagline": better.text}


@app.route(route="chaining/start", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_chaining(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start `tagline_chain` with the JSON body (`{"topic": "..."}`, optional); answers 202 + status URLs."""
    try:
        body = json.loads(req.get_body() or b"{}")
    except ValueError:
        return func.HttpResponse(
            '{"error": "body must be JSON"}', status_code=400, mimetype="application/json"
        )
    instance_id = await client.start_new("tagline_chain", client_input=body if isinstance(body, dict) else {})
    return client.create_check_status_response(req, instance_id)
