"""Workflows: five agent-framework `Workflow`s hosted as durable orchestrations, one per shape of
Microsoft's workflow samples.

- `shared_state`: executors hand a document on through the workflow's shared state.
- `spam_triage`: an agent decides, switch-case edges route (quarantine, or a reply drafted by a
  second agent).
- `expert_review`: fan-out to two agents in parallel, fan-in to one aggregating executor.
- `content_approval`: a writer agent drafts, a person approves through the respond route (a
  notifier executor is told where to answer), then it is published or sent back.
- `refund_order`: a sub-workflow (child orchestration) with a human approval inside.

Each gets `POST /api/workflow/{name}/run`, `GET .../status/{id}` and
`POST .../respond/{id}/{requestId}`. `python -m harness up --app samples/workflows` runs this file
unmodified against the scripted fake model in `fake_model.json`; deployed, it talks to Azure OpenAI.
"""

import logging
import os
from dataclasses import dataclass

from agent_framework import (
    Agent,
    AgentExecutorResponse,
    Case,
    Default,
    Executor,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowExecutor,
    handler,
    response_handler,
)
from agent_framework.openai import OpenAIChatClient
from azure.identity import DefaultAzureCredential
from pydantic import BaseModel

from durableagent import AgentFunctionApp, WorkflowHitlContext

logger = logging.getLogger("samples.workflows")


def build_chat_client() -> OpenAIChatClient:
    """Azure OpenAI from the app settings; an API key if given, else Entra ID."""
    api_key = os.environ.get("AZURE_OPENAI_API_KEY")
    return OpenAIChatClient(
        model=os.environ.get("AZURE_OPENAI_CHAT_DEPLOYMENT_NAME", "gpt-4o-mini"),
        azure_endpoint=os.environ["AZURE_OPENAI_ENDPOINT"],
        api_key=api_key,
        credential=None if api_key else DefaultAzureCredential(),
    )


def agent(name: str, instructions: str) -> Agent:
    return Agent(client=build_chat_client(), name=name, instructions=instructions)


# -- 1. shared state -------------------------------------------------------------------------------
@dataclass
class Document:
    doc_id: str
    text: str


class StoreDocument(Executor):
    @handler
    async def store(self, doc: Document, ctx: WorkflowContext[str]) -> None:
        ctx.set_state(f"doc:{doc.doc_id}", doc.text)
        await ctx.send_message(doc.doc_id)


class CountWords(Executor):
    @handler
    async def count(self, doc_id: str, ctx: WorkflowContext[str]) -> None:
        words = len(str(ctx.get_state(f"doc:{doc_id}", "")).split())
        ctx.set_state(f"words:{doc_id}", words)
        await ctx.send_message(doc_id)


class Report(Executor):
    @handler
    async def report(self, doc_id: str, ctx: WorkflowContext[None, dict]) -> None:
        await ctx.yield_output(
            {
                "doc_id": doc_id,
                "words": ctx.get_state(f"words:{doc_id}"),
                "text": ctx.get_state(f"doc:{doc_id}"),
            }
        )


store_document = StoreDocument(id="store_document")
shared_state = (
    WorkflowBuilder(name="shared_state", start_executor=store_document)
    .add_chain([store_document, CountWords(id="count_words"), Report(id="report")])
    .build()
)


# -- 2. switch-case routing after an agent ---------------------------------------------------------
class Quarantine(Executor):
    @handler
    async def quarantine(self, verdict: AgentExecutorResponse, ctx: WorkflowContext[None, str]) -> None:
        await ctx.yield_output(f"quarantined: {verdict.agent_response.text}")


class SendReply(Executor):
    @handler
    async def send(self, drafted: AgentExecutorResponse, ctx: WorkflowContext[None, str]) -> None:
        await ctx.yield_output(f"sent: {drafted.agent_response.text}")


def is_spam(response: AgentExecutorResponse) -> bool:
    return response.agent_response.text.strip().upper().startswith("SPAM")


spam_detector = agent("SpamDetector", "Answer SPAM or NOT SPAM, then a one-line reason.")
email_assistant = agent("EmailAssistant", "Draft a short, polite reply to the e-mail.")
quarantine, send_reply = Quarantine(id="quarantine"), SendReply(id="send_reply")
spam_triage = (
    WorkflowBuilder(name="spam_triage", start_executor=spam_detector, output_from=[quarantine, send_reply])
    .add_switch_case_edge_group(
        spam_detector, [Case(condition=is_spam, target=quarantine), Default(target=email_assistant)]
    )
    .add_edge(email_assistant, send_reply)
    .build()
)


# -- 3. parallel fan-out and fan-in ----------------------------------------------------------------
class ParseQuestion(Executor):
    @handler
    async def parse(self, question: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(question.strip().rstrip("?") + "?")


class Aggregate(Executor):
    @handler
    async def aggregate(self, answers: list[AgentExecutorResponse], ctx: WorkflowContext[None, dict]) -> None:
        await ctx.yield_output({a.executor_id: a.agent_response.text for a in answers})


physicist = agent("Physicist", "Answer as a physicist, in one sentence.")
chemist = agent("Chemist", "Answer as a chemist, in one sentence.")
parse_question, aggregate = ParseQuestion(id="parse_question"), Aggregate(id="aggregate")
expert_review = (
    WorkflowBuilder(name="expert_review", start_executor=parse_question, output_from=[aggregate])
    .add_fan_out_edges(parse_question, [physicist, chemist])
    .add_fan_in_edges([physicist, chemist], aggregate)
    .build()
)


# -- 4. human approval with a notifier -------------------------------------------------------------
class ApprovalRequest(BaseModel):
    draft: str
    respond_url: str = ""


class ApprovalResponse(BaseModel):
    approved: bool
    feedback: str = ""


@dataclass
class Notification:
    message: str


class RequestApproval(Executor):
    @handler
    async def ask(self, drafted: AgentExecutorResponse, ctx: WorkflowContext[Notification]) -> None:
        await ctx.request_info(ApprovalRequest(draft=drafted.agent_response.text), ApprovalResponse)
        request_id = await WorkflowHitlContext.pending_request_id(ctx)
        url = WorkflowHitlContext.from_context(ctx).build_respond_url(request_id or "")
        await ctx.send_message(Notification(f"Please review the draft and answer at {url}"))

    @response_handler
    async def on_answer(
        self, request: ApprovalRequest, answer: ApprovalResponse, ctx: WorkflowContext[None, str]
    ) -> None:
        if answer.approved:
            await ctx.yield_output(f"published: {request.draft}")
        else:
            await ctx.yield_output(f"sent back: {answer.feedback}")


class Notifier(Executor):
    @handler
    async def notify(self, note: Notification, ctx: WorkflowContext) -> None:
        logger.info("notify reviewer: %s", note.message)
        ctx.set_state("last_notification", note.message)


writer = agent("Writer", "Write a two-sentence product announcement.")
request_approval, notifier = RequestApproval(id="request_approval"), Notifier(id="notifier")
content_approval = (
    WorkflowBuilder(name="content_approval", start_executor=writer, output_from=[request_approval])
    .add_edge(writer, request_approval)
    .add_edge(request_approval, notifier)
    .build()
)


# -- 5. a sub-workflow with a human approval inside ------------------------------------------------
@dataclass
class Refund:
    order_id: str
    amount: float


class CheckRefund(Executor):
    @handler
    async def check(self, refund: Refund, ctx: WorkflowContext[Refund]) -> None:
        await ctx.request_info(refund, ApprovalResponse)

    @response_handler
    async def decided(
        self, refund: Refund, answer: ApprovalResponse, ctx: WorkflowContext[None, str]
    ) -> None:
        verdict = "approved" if answer.approved else "denied"
        await ctx.yield_output(f"refund of {refund.amount:.2f} for {refund.order_id} {verdict}")


class ReceiveOrder(Executor):
    @handler
    async def receive(self, refund: Refund, ctx: WorkflowContext[Refund]) -> None:
        await ctx.send_message(refund)


class Finalize(Executor):
    @handler
    async def finalize(self, outcome: str, ctx: WorkflowContext[None, str]) -> None:
        await ctx.yield_output(f"order closed: {outcome}")


refund_approval = WorkflowBuilder(
    name="refund_approval", start_executor=CheckRefund(id="check_refund")
).build()
receive_order = ReceiveOrder(id="receive_order")
approval_step = WorkflowExecutor(refund_approval, id="approval")
finalize = Finalize(id="finalize")
refund_order = (
    WorkflowBuilder(name="refund_order", start_executor=receive_order)
    .add_edge(receive_order, approval_step)
    .add_edge(approval_step, finalize)
    .build()
)

app = AgentFunctionApp(workflows=[shared_state, spam_triage, expert_review, content_approval, refund_order])
