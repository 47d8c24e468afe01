"""Concurrency: two agents answer the same question in parallel, and the answers are combined.

`context.task_all` fans the two turns out at once (each agent on its own new session) and resumes
when both have answered. `python -m harness up --app samples/concurrency` runs this file unmodified
against the scripted fake model in `fake_model.json`; deployed, it talks to Azure OpenAI.
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


physicist = Agent(
    client=build_chat_client(),
    name="PhysicistAgent",
    instructions="You are a physicist. Explain things in two plain sentences.",
)
chemist = Agent(
    client=build_chat_client(),
    name="ChemistAgent",
    instructions="You are a chemist. Explain things in two plain sentences.",
)

app = AgentFunctionApp(agents=[physicist, chemist])
FIELDS = {"PhysicistAgent": "physics", "ChemistAgent": "chemistry"}


@app.orchestration_trigger(context_name="context")
def expert_panel(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Ask both experts at once; return both answers and where each conversation is stored."""
    topic = (context.get_input() or {}).get("topic") or "temperature"
    experts = [app.get_agent(context, name) for name in FIELDS]
    sessions = [expert.create_session() for expert in experts]
    answers = yield context.task_all(
        [
            expert.run(f"What is {topic}, in terms of {FIELDS[expert.name]}?", session=session)
            for expert, session in zip(experts, sessions, strict=True)
        ]
    )
    return {
        "topic": topic,
        "answers": {expert.name: answer.text for expert, answer in zip(experts, answers, strict=True)},
        "sessions": {expert.name: session.key for expert, session in zip(experts, sessions, strict=True)},
        "combined": "\n\n".join(
            f"{expert.name}: {answer.text}" for expert, answer in zip(experts, answers, strict=True)
        ),
    }


@app.route(route="concurrency/start", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_concurrency(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Start `expert_panel` with the JSON body (`{"topic": "..."}`, optional); answers 202 + status URLs."""
    try:
        body = json.loads(req.get_body() or b"{}")
    except ValueError:
        return func.HttpResponse(
            '{"error": "body must be JSON"}', status_code=400, mimetype="application/json"
        )
    instance_id = await client.start_new("expert_panel", client_input=body if isinstance(body, dict) else {})
    return client.create_check_status_response(req, instance_id)
