"""Human in the loop: an agent drafts, a person approves or asks for changes, then it is published.

The orchestration drafts with `WriterAgent`, tells a reviewer (the `notify_for_approval` activity),
then waits for an `ApprovalResponse` event (`wait_for_external_event`) or a timeout
(`create_timer`), whichever comes first (`task_any`). Feedback goes back to the same agent session
for a revision, up to `max_review_attempts`; an approval runs the `publish_content` activity. The
current draft is in the instance's custom status, so the reviewer reads it from the status URL.
`python -m harness up --app samples/human_in_the_loop` runs this file unmodified against the
scripted fake model in `fake_model.json`; deployed, it talks to Azure OpenAI.
"""

import json
import logging
import os
from collections.abc import Generator
from datetime import timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import Agent
from agent_framework.openai import OpenAIChatClient
from azure.identity import DefaultAzureCredential

from durableagent import AgentFunctionApp

logger = logging.getLogger("samples.human_in_the_loop")

APPROVAL_EVENT = "ApprovalResponse"


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
    instructions="You write short articles (a title line, then one paragraph) and revise them on feedback.",
)

app = AgentFunctionApp(agents=[writer])


def _approval(payload: Any) -> tuple[bool, str]:
    """(approved, feedback) from the event: a JSON object, or its JSON text as Azure may deliver it."""
    if isinstance(payload, str):
        try:
            payload = json.loads(payload)
        except ValueError:
            payload = {"approved": False, "feedback": payload}
    if not isinstance(payload, dict):
        return False, ""
    return bool(payload.get("approved")), str(payload.get("feedback") or "")


@app.orchestration_trigger(context_name="context")
def content_review(context: df.DurableOrchestrationContext) -> Generator[Any, Any, dict[str, Any]]:
    """Draft, then loop: notify, wait for approval or timeout, revise on feedback; publish on approval."""
    request = context.get_input() or {}
    topic = str(request.get("topic") or "").strip()
    if not topic:
        raise ValueError("input needs a 'topic'")
    max_attempts = int(request.get("max_review_attempts") or 3)
    timeout = timedelta(hours=float(request.get("approval_timeout_hours") or 72))

    agent = app.get_agent(context, "WriterAgent")
    session = agent.create_session()
    draft = yield agent.run(f"Write a short article about {topic}.", session=session)
    content = draft.text
    for attempt in range(1, max_attempts + 1):
        context.set_custom_status(
            {"step": "awaiting_approval", "attempt": attempt, "content": content, "sessionId": session.key}
        )
        yield context.call_activity(
            "notify_for_approval",
            {"instance_id": context.instance_id, "attempt": attempt, "content": content},
        )
        approval = context.wait_for_external_event(APPROVAL_EVENT)
        deadline = context.create_timer(context.current_utc_datetime + timeout)
        winner = yield context.task_any([approval, deadline])
        if winner is deadline:
            context.set_custom_status({"step": "timed_out", "attempt": attempt, "sessionId": session.key})
            return {"status": "timed_out", "attempts": attempt, "content": content, "sessionId": session.key}
        deadline.cancel()
        approved, feedback = _approval(approval.result)
        if approved:
            published = yield context.call_activity("publish_content", {"topic": topic, "content": content})
            context.set_custom_status({"step": "published", "attempt": attempt, "sessionId": session.key})
            return {
                "status": "published",
                "attempts": attempt,
                "content": content,
                "published": published,
                "sessionId": session.key,
            }
        if attempt < max_attempts:
            context.set_custom_status({"step": "revising", "attempt": attempt, "sessionId": session.key})
            revision = yield agent.run(
                f"Revise the article using this feedback: {feedback or 'make it better'}", session=session
            )
            content = revision.text
    context.set_custom_status({"step": "rejected", "attempt": max_attempts, "sessionId": session.key})
    return {"status": "rejected", "attempts": max_attempts, "content": content, "sessionId": session.key}


@app.activity_trigger(input_name="review")
def notify_for_approval(review: dict[str, Any]) -> str:
    """Stand-in for e-mailing or messaging the reviewer a link to the draft."""
    logger.info(
        "review %s, attempt %s: please approve or reject:\n%s",
        review["instance_id"],
        review["attempt"],
        review["content"],
    )
    return f"Reviewer notified about attempt {review['attempt']}"


@app.activity_trigger(input_name="article")
def publish_content(article: dict[str, Any]) -> str:
    """Stand-in for publishing the approved article."""
    logger.info("published the article about %s:\n%s", article["topic"], article["content"])
    return f"Published the article about {article['topic']}"


@app.route(route="hitl/start", methods=["POST"])
@app.durable_client_input(client_name="client")
async def start_content_review(
    req: func.HttpRequest, client: df.DurableOrchestrationClient
) -> func.HttpResponse:
    """Start `content_review` with `{"topic": "...", "max_review_attempts"?, "approval_timeout_hours"?}`."""
    try:
        body = json.loads(req.get_body() or b"{}")
    except ValueError:
        body = None
    if not isinstance(body, dict) or not str(body.get("topic") or "").strip():
        return func.HttpResponse(
            '{"error": "send JSON with a non-empty \\"topic\\""}',
            status_code=400,
            mimetype="application/json",
        )
    instance_id = await client.start_new("content_review", client_input=body)
    return client.create_check_status_response(req, instance_id)
