"""Conditionals: a structured answer (is this e-mail spam?) picks the branch and the activity after it.

`SpamDetectorAgent` answers with a `SpamResult` (`options={"response_format": SpamResult}`, read
back as `result.value`); spam goes to the `handle_spam_email` activity, anything else gets a reply
drafted by `EmailAssistantAgent` and handed to the `send_email` activity.
`python -m harness up --app samples/conditionals` runs this file unmodified against the scripted
fake model in `fake_model.json`; deployed, it talks to Azure OpenAI.
"""

import json
import logging
import os
from collections.abc import Generator
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent
from agent_framework.openai import OpenAIChatClient
from azure.identity import DefaultAzureCredential
from pydantic import BaseModel

from durableagent import AgentFunctionApp

logger = logging.getLogger("samples.conditionals")


class SpamResult(BaseModel):
    is_spam: bool
    reason: str


def build_chat_client() -> OpenAIChatClient:
    """Azure OpenAI from the app settings; an API key if given, else Entra ID."""
    api_key = os.environ.get("AZURE_OPENAI_API_KEY")
    return OpenAIChatClient(
        model=os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "gpt-4o-mini"),
        azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"],
        api_key=api_key,
        credential=None if api_key else DefaultAzureCredential(),
    )


spam_detector = Agent(
    client=build_chat_client(),
    name="SpamDetectorAgent",
    instructions="You decide whether an e-mail is spam. Answer as JSON with is_spam and a one-line reason.",
)
email_assistant = Agent(
    client=build_chat_client(),
    name="EmailAssistantAgent",
    instructions="You draft short, polite replies to e-mails.",
)

app = AgentFunctionApp(agents=[spam_detector, email_assistant])


@app.orchestration_trigger(context_name="context")
def spam_check(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Classify the e-mail, then either file it as spam or draft and send a reply."""
    email = context.get_input() or {}
    content = str(email.get("email_content") or "").strip()
    if not content:
        raise ValueError("input needs 'email_content'")
    email_id = str(email.get("email_id") or "email")
    detector = app.get_agent(context, "SpamDetectorAgent")
    verdict = yield detector.run(
        f"Is this e-mail spam?\n\n{content}",
        session=detector.create_session(),
        options={"response_format": SpamResult},
    )
    result: SpamResult = verdict.value
    if result.is_spam:
        outcome = yield context.call_activity(
            "handle_spam_email", {"email_id": email_id, "reason": result.reason}
        )
        return {"email_id": email_id, "is_spam": True, "reason": result.reason, "outcome": outcome}
    assistant = app.get_agent(context, "EmailAssistantAgent")
    session = assistant.create_session()
    reply = yield assistant.run(f"Draft a polite reply to this e-mail:\n\n{content}", session=session)
    outcome = yield context.call_activity("send_email", {"email_id": email_id, "reply": reply.text})
    return {
        "email_id": email_id,
        "is_spam": False,
        "reason": result.reason,
        "reply": reply.text,
        "outcome": outcome,
        "sessionId": session.key,
    }


@app.activity_trigger(input_name="spam")
def handle_spam_email(spam: dict[str, str]) -> str:
    """Stand-in for moving the e-mail to the spam folder."""
    logger.info("e-mail %s marked as spam: %s", spam["email_id"], spam["reason"])
    return f"Email {spam['email_id']} marked as spam: {spam['reason']}"


@app.activity_trigger(input_name="email")
def send_email(email: dict[str, str]) -> str:
    """Stand-in for sending the drafted reply."""
    logger.info("reply to e-mail %s sent: %s", email["email_id"], email["reply"])
    return f"Reply to {email['email_id']} sent"


@app.route(route="conditionals/start", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_spam_check(req: func.HttpRequest, client: df.DurableOrchestrationClient) -> func.HttpResponse:
    """Start `spam_check` with `{"email_id": "...", "email_content": "..."}`; answers 202 + status URLs."""
    try:
        body = json.loads(req.get_body() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not str(body.get("email_content") or "").strip():
        return func.HttpResponse(
            '{"error": "send JSON with a non-empty \\"email_content\\""}',
            status_code=400,
            mimetype="application/json",
        )
    instance_id = await client.start_new("spam_check", client_input=body)
    return client.create_check_status_response(req, instance_id)
