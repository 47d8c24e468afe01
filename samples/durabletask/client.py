"""The client side of worker.py's shapes, through Microsoft's classes.

Agents are called with `DurableAIAgentClient` (it signals the agent's entity, then reads the reply
from the entity's state), orchestrations with `DurableTaskSchedulerClient`, the workflow with
`DurableWorkflowClient`. Each shape is one function returning what it got, so tests drive them too.

    python samples/durabletask/client.py single_agent      # or multi_agent, chaining, concurrency,
    python samples/durabletask/client.py all               # conditionals, human_in_the_loop, workflow,
                                                           # workflow_branches, sub_workflow
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
import uuid
from typing import Any

from agent_framework_durabletask import DurableAIAgentClient, DurableWorkflowClient
from durabletask.azuremanaged.client import DurableTaskSchedulerClient
from durabletask.client import OrchestrationState, OrchestrationStatus

LOCAL_ENDPOINT = "http://localhost:8080"
REVIEW_EVENT = "ReviewDecision"  # worker.py's
WORKFLOW_NAME = "launch_note"  # worker.py's
SORTER_WORKFLOW = "mail_sorter"  # worker.py's
REFUND_WORKFLOW = "refund_desk"  # worker.py's
ENDED = {OrchestrationStatus.COMPLETED, OrchestrationStatus.FAILED, OrchestrationStatus.TERMINATED}


def get_client(endpoint: str = LOCAL_ENDPOINT, taskhub: str = "default") -> DurableTaskSchedulerClient:
    """Microsoft's scheduler client; no credential and no TLS for the local endpoint (sidecar or emulator)."""
    local = endpoint.startswith(("http://localhost", "http://127.0.0.1", "localhost", "127.0.0.1"))
    credential = None
    if not local:
        from azure.identity import DefaultAzureCredential

        credential = DefaultAzureCredential()
    return DurableTaskSchedulerClient(
        host_address=endpoint, taskhub=taskhub, token_credential=credential, secure_channel=not local
    )


def agents(client: DurableTaskSchedulerClient, poll_seconds: float = 0.2) -> DurableAIAgentClient:
    """The agent client; it polls the agent's entity for the reply every `poll_seconds`."""
    return DurableAIAgentClient(
        client, max_poll_retries=int(60 / poll_seconds), poll_interval_seconds=poll_seconds
    )


def single_agent(agent_client: DurableAIAgentClient) -> dict[str, Any]:
    """One agent, two turns on one session (the entity keeps the conversation)."""
    tutor = agent_client.get_agent("TutorAgent")
    session = tutor.create_session()
    first = tutor.run("What is a durable entity?", session=session)
    second = tutor.run("And why does it survive a crash?", session=session)
    return {"session": str(session.durable_session_id), "replies": [first.text, second.text]}


def multi_agent(agent_client: DurableAIAgentClient) -> dict[str, str]:
    """Two agents with tools, each on a session of its own."""
    weather = agent_client.get_agent("WeatherAgent")
    math = agent_client.get_agent("MathAgent")
    return {
        "WeatherAgent": weather.run("What is the weather in Oslo?", session=weather.create_session()).text,
        "MathAgent": math.run("Calculate a 20% tip on a $50 bill", session=math.create_session()).text,
    }


def run_orchestration(
    client: DurableTaskSchedulerClient, name: str, payload: Any, timeout: int = 120
) -> OrchestrationState:
    """Start an orchestration and wait for it to end."""
    instance_id = client.schedule_new_orchestration(name, input=payload)
    state = client.wait_for_orchestration_completion(instance_id, timeout=timeout)
    if state is None:
        raise RuntimeError(f"orchestration {instance_id} not found")
    return state


def output(state: OrchestrationState) -> Any:
    """An ended orchestration's output, or its failure as an error."""
    if state.runtime_status != OrchestrationStatus.COMPLETED:
        raise RuntimeError(f"{state.instance_id} ended {state.runtime_status.name}: {state.failure_details}")
    return json.loads(state.serialized_output) if state.serialized_output else None


def chaining(client: DurableTaskSchedulerClient) -> dict[str, str]:
    return output(run_orchestration(client, "tagline_chain", "Acme Coffee"))


def concurrency(client: DurableTaskSchedulerClient) -> dict[str, str]:
    return output(run_orchestration(client, "expert_panel", "What is temperature?"))


def conditionals(client: DurableTaskSchedulerClient) -> list[dict[str, Any]]:
    emails = [
        {"id": "mail-1", "body": "You are a winner! Click here to claim your prize."},
        {"id": "mail-2", "body": "Are we still meeting on Tuesday?"},
    ]
    return [output(run_orchestration(client, "email_triage", email)) for email in emails]


def wait_for_review(
    client: DurableTaskSchedulerClient, instance_id: str, attempt: int, timeout: float = 60
) -> str:
    """The draft under review, once the orchestration's custom status says it awaits attempt `attempt`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = client.get_orchestration_state(instance_id)
        if state is not None and state.serialized_custom_status:
            status = json.loads(state.serialized_custom_status)
            if status.get("step") == "awaiting_review" and status.get("attempt") == attempt:
                return str(status["draft"])
        if state is not None and state.runtime_status in ENDED:
            raise RuntimeError(f"{instance_id} ended {state.runtime_status.name} before review {attempt}")
        time.sleep(0.1)
    raise TimeoutError(f"{instance_id} did not ask for review {attempt} in {timeout} s")


def human_in_the_loop(client: DurableTaskSchedulerClient, timeout_seconds: float = 3600) -> dict[str, Any]:
    """Reject the first draft with feedback, approve the revision."""
    instance_id = client.schedule_new_orchestration(
        "article_review",
        input={"topic": "durable agents", "timeout_seconds": timeout_seconds, "max_attempts": 3},
    )
    drafts = [wait_for_review(client, instance_id, 1)]
    client.raise_orchestration_event(
        instance_id, REVIEW_EVENT, data={"approved": False, "feedback": "shorter"}
    )
    drafts.append(wait_for_review(client, instance_id, 2))
    client.raise_orchestration_event(instance_id, REVIEW_EVENT, data={"approved": True})
    state = client.wait_for_orchestration_completion(instance_id, timeout=60)
    assert state is not None
    return {"instance_id": instance_id, "drafts": drafts, "output": output(state)}


def wait_for_request(flows: DurableWorkflowClient, instance_id: str, timeout: float = 60) -> dict[str, Any]:
    """The workflow's first pending request for a person, once it has one."""
    deadline = time.monotonic() + timeout
    while not (pending := flows.get_pending_hitl_requests(instance_id)):
        if flows.get_runtime_status(instance_id) in {"COMPLETED", "FAILED", "TERMINATED"}:
            raise RuntimeError(f"{instance_id} ended before asking a person")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{instance_id} asked nobody in {timeout} s")
        time.sleep(0.1)
    return pending[0]


def workflow(client: DurableTaskSchedulerClient, approve: bool = True) -> dict[str, Any]:
    """Start the launch-note workflow, answer its sign-off request, read its output."""
    flows = DurableWorkflowClient(client, workflow_name=WORKFLOW_NAME)
    instance_id = flows.start_workflow(
        input={"product": "Nimbus", "audience": "note takers"}, instance_id=f"launch-{uuid.uuid4().hex[:8]}"
    )
    request = wait_for_request(flows, instance_id)
    flows.send_hitl_response(instance_id, request["request_id"], {"approved": approve, "comment": "ship it"})
    return {
        "instance_id": instance_id,
        "request": request,
        "output": flows.await_workflow_output(instance_id),
    }


async def workflow_branches(client: DurableTaskSchedulerClient) -> dict[str, Any]:
    """The switch-case workflow on two e-mails, one awaited, one streamed event by event."""
    flows = DurableWorkflowClient(client, workflow_name=SORTER_WORKFLOW)
    spam = await flows.run_workflow("You are a winner! Claim your prize.")
    instance_id = await flows.run_workflow("Can we move our call to Tuesday?", wait=False)
    events = [event async for event in flows.stream_workflow(instance_id, poll_interval_seconds=0.1)]
    outputs = [event.data for event in events if event.type == "output"]
    executors = [event.executor_id for event in events if event.type == "executor_invoked"]
    return {"spam": spam, "reply": outputs, "executors": executors, "instance_id": instance_id}


def sub_workflow(client: DurableTaskSchedulerClient, approve: bool = True) -> dict[str, Any]:
    """The refund desk: its sub-workflow (a child orchestration) asks a manager; the request id the
    client sees is qualified with the sub-workflow's node, and the answer is routed to the child."""
    flows = DurableWorkflowClient(client, workflow_name=REFUND_WORKFLOW)
    instance_id = flows.start_workflow(input={"order": "o-17", "amount": 25.0, "reason": "arrived broken"})
    request = wait_for_request(flows, instance_id)
    flows.send_hitl_response(instance_id, request["request_id"], {"approved": approve})
    return {
        "instance_id": instance_id,
        "request": request,
        "output": flows.await_workflow_output(instance_id),
    }


SHAPES = (
    "single_agent",
    "multi_agent",
    "chaining",
    "concurrency",
    "conditionals",
    "human_in_the_loop",
    "workflow",
    "workflow_branches",
    "sub_workflow",
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("shape", choices=(*SHAPES, "all"))
    parser.add_argument("--endpoint", default=os.environ.get("ENDPOINT", LOCAL_ENDPOINT))
    parser.add_argument("--taskhub", default=os.environ.get("TASKHUB", "default"))
    args = parser.parse_args()
    client = get_client(args.endpoint, args.taskhub)
    for shape in SHAPES if args.shape == "all" else (args.shape,):
        target = agents(client) if shape in {"single_agent", "multi_agent"} else client
        result = globals()[shape](target)
        if asyncio.iscoroutine(result):
            result = asyncio.run(result)
        json.dump({shape: result}, sys.stdout, indent=2, default=str)
        print()


if __name__ == "__main__":
    main()
