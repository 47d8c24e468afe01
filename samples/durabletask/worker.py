"""A standalone Durable Task worker hosting agents, orchestrations and a workflow.

The shapes of Microsoft's `agent-framework-durabletask` samples in one worker: a single agent and two
agents called from a client, agents chained, fanned out and branched on inside orchestrations, a
human approval with a timeout, and an agent-framework `Workflow` that pauses for a person. It talks
to a Durable Task Scheduler (or its emulator) through `DurableTaskSchedulerWorker`; offline, to
`python -m harness sidecar`, which serves the same protocol on the same port (8080), durably.

    python -m harness sidecar --fresh            # one terminal
    python samples/durabletask/worker.py         # another: the fake model of fake_model.json
    python samples/durabletask/client.py all     # a third: every shape, see client.py

`--live` uses Azure OpenAI (`AZURE_OPENAI_ENDPOINT`, `AZURE_OPENAI_CHAT_DEPLOYMENT_NAME`, optionally
`AZURE_OPENAI_API_KEY`, else Entra ID) instead of the fake model.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
from collections.abc import Generator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Never

from agent_framework import (
    Agent,
    AgentExecutorRequest,
    AgentExecutorResponse,
    AgentResponse,
    BaseChatClient,
    Case,
    Default,
    Executor,
    Message,
    Workflow,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowExecutor,
    handler,
    response_handler,
    tool,
)
from agent_framework_durabletask import DurableAIAgentOrchestrationContext, DurableAIAgentWorker
from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker
from durabletask.task import ActivityContext, OrchestrationContext, Task, when_all, when_any
from pydantic import BaseModel

log = logging.getLogger("samples.durabletask")

HERE = Path(__file__).resolve().parent
FAKE_MODEL = HERE / "fake_model.json"
LOCAL_ENDPOINT = "http://localhost:8080"
REVIEW_EVENT = "ReviewDecision"
WORKFLOW_NAME = "launch_note"
SORTER_WORKFLOW = "mail_sorter"
REFUND_WORKFLOW = "refund_desk"


# --- the model --------------------------------------------------------------------------------------


def build_chat_client(script: str | os.PathLike[str] | None = FAKE_MODEL) -> BaseChatClient:
    """The fake model answering from `script` (offline), or Azure OpenAI when `script` is None."""
    if script is not None:
        from fakes import ScriptedChatClient, load_script

        return ScriptedChatClient(load_script(script))
    from agent_framework.openai import OpenAIChatClient
    from azure.identity import DefaultAzureCredential

    api_key = os.environ.get("AZURE_OPENAI_API_KEY")
    return OpenAIChatClient(
        model=os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "gpt-4o-mini"),
        azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"],
        api_key=api_key,
        credential=None if api_key else DefaultAzureCredential(),
    )


# --- agents -----------------------------------------------------------------------------------------


@tool
def get_weather(location: str) -> str:
    """Today's weather in a place (a stand-in for a weather service)."""
    return f"{location}: 18 C, light wind"


@tool
def tip(bill: float, percent: float) -> str:
    """The tip on a bill."""
    return f"{bill * percent / 100:.2f}"


class SpamVerdict(BaseModel):
    """The spam detector's structured answer."""

    is_spam: bool
    reason: str


def build_agents(chat_client: BaseChatClient) -> list[Agent]:
    """Every agent the worker hosts, on one chat client (the agents' names are their entities')."""
    return [
        Agent(client=chat_client, name="TutorAgent", instructions="You are a patient tutor. Answer briefly."),
        Agent(
            client=chat_client,
            name="WeatherAgent",
            instructions="You report the weather. Use get_weather.",
            tools=[get_weather],
        ),
        Agent(client=chat_client, name="MathAgent", instructions="You compute tips. Use tip.", tools=[tip]),
        Agent(client=chat_client, name="WriterAgent", instructions="You write and improve short texts."),
        Agent(client=chat_client, name="PhysicistAgent", instructions="You are a physicist. One sentence."),
        Agent(client=chat_client, name="ChemistAgent", instructions="You are a chemist. One sentence."),
        Agent(
            client=chat_client,
            name="SpamDetectorAgent",
            instructions="You decide whether an e-mail is spam. Answer in JSON.",
        ),
        Agent(
            client=chat_client, name="EmailAssistantAgent", instructions="You draft polite e-mail replies."
        ),
    ]


# --- orchestrations ---------------------------------------------------------------------------------


def tagline_chain(context: OrchestrationContext, topic: str) -> Generator[Task[Any], Any, dict[str, str]]:
    """Chaining: the writer drafts, then improves its own draft on the same session."""
    writer = DurableAIAgentOrchestrationContext(context).get_agent("WriterAgent")
    session = writer.create_session()
    draft: AgentResponse = yield writer.run(f"Write a tagline for {topic}.", session=session)
    better: AgentResponse = yield writer.run(f"Make it shorter: {draft.text}", session=session)
    return {"session": str(session.durable_session_id), "draft": draft.text, "tagline": better.text}


def expert_panel(context: OrchestrationContext, question: str) -> Generator[Task[Any], Any, dict[str, str]]:
    """Concurrency: two experts answer at once, each on a session of its own."""
    agents = DurableAIAgentOrchestrationContext(context)
    experts = [agents.get_agent("PhysicistAgent"), agents.get_agent("ChemistAgent")]
    tasks = [expert.run(question, session=expert.create_session()) for expert in experts]
    answers: list[AgentResponse] = yield when_all(tasks)
    return {expert.name: answer.text for expert, answer in zip(experts, answers, strict=True)}


def quarantine_email(context: ActivityContext, reason: str) -> str:
    """Where spam goes."""
    return f"quarantined: {reason}"


def send_reply(context: ActivityContext, reply: str) -> str:
    """Where a reply goes (a stand-in for a mail service)."""
    return f"sent: {reply}"


def email_triage(
    context: OrchestrationContext, email: dict[str, str]
) -> Generator[Task[Any], Any, dict[str, Any]]:
    """Conditionals: a structured verdict decides between an activity and a second agent."""
    agents = DurableAIAgentOrchestrationContext(context)
    detector = agents.get_agent("SpamDetectorAgent")
    verdict: AgentResponse = yield detector.run(
        f"Is this e-mail spam? {email['body']}",
        session=detector.create_session(),
        options={"response_format": SpamVerdict},
    )
    result = verdict.value
    if not isinstance(result, SpamVerdict):
        raise ValueError(f"the spam detector gave no verdict: {verdict.text!r}")
    if result.is_spam:
        outcome = yield context.call_activity(quarantine_email, input=result.reason)
        return {"id": email["id"], "spam": True, "outcome": outcome}
    assistant = agents.get_agent("EmailAssistantAgent")
    reply: AgentResponse = yield assistant.run(
        f"Reply to this e-mail: {email['body']}", session=assistant.create_session()
    )
    outcome = yield context.call_activity(send_reply, input=reply.text)
    return {"id": email["id"], "spam": False, "outcome": outcome}


def notify_reviewer(context: ActivityContext, draft: str) -> str:
    """Tells a person there is a draft to review (a stand-in for e-mail or chat)."""
    log.info("review requested: %s", draft)
    return "notified"


def publish_article(context: ActivityContext, article: str) -> str:
    """Publishes the approved article (a stand-in)."""
    return f"published: {article}"


def article_review(
    context: OrchestrationContext, request: dict[str, Any]
) -> Generator[Task[Any], Any, dict[str, Any]]:
    """Human in the loop: draft, ask a person, revise on feedback, publish on approval, give up on
    silence (`timeout_seconds`) or after `max_attempts` rejections."""
    writer = DurableAIAgentOrchestrationContext(context).get_agent("WriterAgent")
    session = writer.create_session()
    draft: AgentResponse = yield writer.run(
        f"Write a short article about {request['topic']}.", session=session
    )
    text = draft.text
    for attempt in range(1, int(request.get("max_attempts", 3)) + 1):
        context.set_custom_status({"step": "awaiting_review", "attempt": attempt, "draft": text})
        yield context.call_activity(notify_reviewer, input=text)
        decision_task = context.wait_for_external_event(REVIEW_EVENT)
        deadline = context.current_utc_datetime + timedelta(
            seconds=float(request.get("timeout_seconds", 3600))
        )
        winner = yield when_any([decision_task, context.create_timer(deadline)])
        if winner is not decision_task:
            context.set_custom_status({"step": "timed_out", "attempt": attempt})
            return {"status": "timed_out", "attempts": attempt, "draft": text}
        decision = decision_task.get_result() or {}
        if decision.get("approved"):
            published = yield context.call_activity(publish_article, input=text)
            context.set_custom_status({"step": "published", "attempt": attempt})
            return {"status": "published", "attempts": attempt, "result": published}
        revised: AgentResponse = yield writer.run(
            f"Revise it: {decision.get('feedback', '')}", session=session
        )
        text = revised.text
    context.set_custom_status({"step": "rejected"})
    return {"status": "rejected", "attempts": int(request.get("max_attempts", 3)), "draft": text}


ORCHESTRATIONS = [tagline_chain, expert_panel, email_triage, article_review]
ACTIVITIES = [quarantine_email, send_reply, notify_reviewer, publish_article]


# --- a workflow that asks a person ------------------------------------------------------------------


@dataclass
class LaunchBrief:
    """What the workflow is started with."""

    product: str
    audience: str


@dataclass
class SignOffRequest:
    """What the person is asked to approve (shown by the workflow client as the pending request)."""

    product: str
    note: str


class SignOff(BaseModel):
    """The person's answer."""

    approved: bool
    comment: str = ""


class BriefToPrompt(Executor):
    """Turns the brief into a request for the copywriter agent, and keeps the brief in shared state."""

    def __init__(self) -> None:
        super().__init__(id="brief_to_prompt")

    @handler
    async def handle(self, brief: LaunchBrief, ctx: WorkflowContext[AgentExecutorRequest]) -> None:
        ctx.set_state("brief", brief)
        prompt = f"Write a launch note for {brief.product} aimed at {brief.audience}."
        await ctx.send_message(
            AgentExecutorRequest(messages=[Message(role="user", contents=[prompt])], should_respond=True)
        )


class AskForSignOff(Executor):
    """Pauses the workflow until a person signs the note off, then passes the verdict on."""

    def __init__(self) -> None:
        super().__init__(id="ask_for_sign_off")

    @handler
    async def handle(self, response: AgentExecutorResponse, ctx: WorkflowContext) -> None:
        brief: LaunchBrief = ctx.get_state("brief")
        await ctx.request_info(
            request_data=SignOffRequest(product=brief.product, note=response.agent_response.text),
            response_type=SignOff,
        )

    @response_handler
    async def on_answer(self, request: SignOffRequest, answer: SignOff, ctx: WorkflowContext[str]) -> None:
        if answer.approved:
            await ctx.send_message(f"published: {request.note}")
        else:
            await ctx.send_message(f"held back ({answer.comment or 'no comment'}): {request.note}")


class Announce(Executor):
    """The workflow's output."""

    def __init__(self) -> None:
        super().__init__(id="announce")

    @handler
    async def handle(self, result: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(result)


def build_workflow(chat_client: BaseChatClient) -> Workflow:
    """brief_to_prompt -> Copywriter (an agent) -> ask_for_sign_off (a person) -> announce."""
    copywriter = Agent(client=chat_client, name="Copywriter", instructions="You write launch notes.")
    start, ask, announce = BriefToPrompt(), AskForSignOff(), Announce()
    return (
        WorkflowBuilder(name=WORKFLOW_NAME, start_executor=start)
        .add_edge(start, copywriter)
        .add_edge(copywriter, ask)
        .add_edge(ask, announce)
        .build()
    )


# --- a workflow that branches -----------------------------------------------------------------------


def screened_as_spam(message: Any) -> bool:
    """The switch-case condition: the screener's structured answer says spam."""
    if not isinstance(message, AgentExecutorResponse):
        return False
    return SpamVerdict.model_validate_json(message.agent_response.text).is_spam


class Junk(Executor):
    """Where the spam branch ends."""

    def __init__(self) -> None:
        super().__init__(id="junk")

    @handler
    async def handle(self, screened: AgentExecutorResponse, ctx: WorkflowContext[Never, str]) -> None:
        verdict = SpamVerdict.model_validate_json(screened.agent_response.text)
        await ctx.yield_output(f"junk: {verdict.reason}")


class Outbox(Executor):
    """Where the reply branch ends."""

    def __init__(self) -> None:
        super().__init__(id="outbox")

    @handler
    async def handle(self, reply: AgentExecutorResponse, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(f"sent: {reply.agent_response.text}")


def build_sorter_workflow(chat_client: BaseChatClient) -> Workflow:
    """Screener (an agent, the start) -> junk when spam, else Replier (an agent) -> outbox."""
    screener = Agent(
        client=chat_client,
        name="Screener",
        instructions="You decide whether an e-mail is spam. Answer in JSON.",
        default_options={"response_format": SpamVerdict},
    )
    replier = Agent(client=chat_client, name="Replier", instructions="You draft polite e-mail replies.")
    junk, outbox = Junk(), Outbox()
    return (
        WorkflowBuilder(name=SORTER_WORKFLOW, start_executor=screener)
        .add_switch_case_edge_group(
            screener, [Case(condition=screened_as_spam, target=junk), Default(target=replier)]
        )
        .add_edge(replier, outbox)
        .build()
    )


# --- a workflow with a sub-workflow that asks a person ----------------------------------------------


@dataclass
class RefundClaim:
    """What the refund desk is started with."""

    order: str
    amount: float
    reason: str


@dataclass
class RefundDecision:
    """What the inner workflow hands back to the outer one."""

    order: str
    approved: bool
    advice: str


class ManagerAnswer(BaseModel):
    """The manager's answer to the inner workflow's question."""

    approved: bool


class Assess(Executor):
    """The inner workflow's start: asks the advisor agent about the claim."""

    def __init__(self) -> None:
        super().__init__(id="assess")

    @handler
    async def handle(self, claim: RefundClaim, ctx: WorkflowContext[AgentExecutorRequest]) -> None:
        ctx.set_state("claim", claim)
        prompt = f"Should we refund {claim.amount:.2f} for order {claim.order}? Reason: {claim.reason}"
        await ctx.send_message(
            AgentExecutorRequest(messages=[Message(role="user", contents=[prompt])], should_respond=True)
        )


class AskManager(Executor):
    """Pauses the inner workflow for a manager's decision, then hands it back to the outer one."""

    def __init__(self) -> None:
        super().__init__(id="ask_manager")

    @handler
    async def handle(self, advice: AgentExecutorResponse, ctx: WorkflowContext) -> None:
        claim: RefundClaim = ctx.get_state("claim")
        await ctx.request_info(
            request_data=RefundDecision(order=claim.order, approved=False, advice=advice.agent_response.text),
            response_type=ManagerAnswer,
        )

    @response_handler
    async def on_answer(
        self, request: RefundDecision, answer: ManagerAnswer, ctx: WorkflowContext[Never, RefundDecision]
    ) -> None:
        await ctx.yield_output(
            RefundDecision(order=request.order, approved=answer.approved, advice=request.advice)
        )


class Intake(Executor):
    """The outer workflow's start: passes the claim to the review sub-workflow."""

    def __init__(self) -> None:
        super().__init__(id="intake")

    @handler
    async def handle(self, claim: RefundClaim, ctx: WorkflowContext[RefundClaim]) -> None:
        await ctx.send_message(claim)


class CloseClaim(Executor):
    """The outer workflow's output, from the sub-workflow's decision."""

    def __init__(self) -> None:
        super().__init__(id="close_claim")

    @handler
    async def handle(self, decision: RefundDecision, ctx: WorkflowContext[Never, str]) -> None:
        verdict = "refunded" if decision.approved else "refused"
        await ctx.yield_output(f"order {decision.order} {verdict} ({decision.advice})")


def build_refund_workflow(chat_client: BaseChatClient) -> Workflow:
    """intake -> refund_review (the sub-workflow refund_check: assess -> RefundAdvisor -> ask_manager)
    -> close_claim; the sub-workflow runs as a child orchestration."""
    advisor = Agent(client=chat_client, name="RefundAdvisor", instructions="You advise on refunds.")
    assess, ask = Assess(), AskManager()
    inner = (
        WorkflowBuilder(name="refund_check", start_executor=assess)
        .add_edge(assess, advisor)
        .add_edge(advisor, ask)
        .build()
    )
    intake, review, close = Intake(), WorkflowExecutor(inner, id="refund_review"), CloseClaim()
    return (
        WorkflowBuilder(name=REFUND_WORKFLOW, start_executor=intake)
        .add_edge(intake, review)
        .add_edge(review, close)
        .build()
    )


# --- the worker -------------------------------------------------------------------------------------


def get_worker(
    endpoint: str = LOCAL_ENDPOINT, taskhub: str = "default", **options: Any
) -> DurableTaskSchedulerWorker:
    """Microsoft's scheduler worker; no credential and no TLS for the local endpoint (sidecar or emulator)."""
    local = endpoint.startswith(("http://localhost", "http://127.0.0.1", "localhost", "127.0.0.1"))
    credential = None
    if not local:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return DurableTaskSchedulerWorker(
        host_address=endpoint,
        taskhub=taskhub,
        token_credential=credential,
        secure_channel=not local,
        **options,
    )


def setup_worker(worker: DurableTaskSchedulerWorker, chat_client: BaseChatClient) -> DurableAIAgentWorker:
    """Registers the agents (as entities), the orchestrations, the activities and the workflow."""
    agent_worker = DurableAIAgentWorker(worker)
    for agent in build_agents(chat_client):
        agent_worker.add_agent(agent)
    for orchestration in ORCHESTRATIONS:
        worker.add_orchestrator(orchestration)
    for activity in ACTIVITIES:
        worker.add_activity(activity)
    agent_worker.configure_workflow(build_workflow(chat_client))
    agent_worker.configure_workflow(build_sorter_workflow(chat_client))
    agent_worker.configure_workflow(build_refund_workflow(chat_client))
    return agent_worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default=os.environ.get("ENDPOINT", LOCAL_ENDPOINT))
    parser.add_argument("--taskhub", default=os.environ.get("TASKHUB", "default"))
    model = parser.add_mutually_exclusive_group()
    model.add_argument(
        "--script", default=str(FAKE_MODEL), help="the fake model's script (default: %(default)s)"
    )
    model.add_argument("--live", action="store_true", help="Azure OpenAI from AZURE_OPENAI_* instead")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    worker = get_worker(args.endpoint, args.taskhub)
    setup_worker(worker, build_chat_client(None if args.live else args.script))
    worker.start()
    print(f"worker connected to {args.endpoint} (task hub {args.taskhub}); Ctrl+C stops it", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        worker.stop()


if __name__ == "__main__":
    main()
