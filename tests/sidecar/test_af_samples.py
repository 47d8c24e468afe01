"""samples/durabletask against the sidecar: Microsoft's `agent-framework-durabletask` classes
(`DurableAIAgentWorker`, `DurableAIAgentClient`, `DurableWorkflowClient`) on Microsoft's
`DurableTaskSchedulerWorker`/`DurableTaskSchedulerClient`, the fake model answering.

The worker runs in a thread of the test process (so the fake's requests can be read), the sidecar in
process (conftest's); what the agents said is also read back through the sidecar's Durable HTTP API
(the agents' sessions are entities `dafx-<agent>`), as `python -m harness instances` reads it.
Two crash tests: a worker SIGKILLed during an agent's model call, and a sidecar SIGKILLed during one.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx
import pytest
from agent_framework_durabletask import AgentSessionId
from durabletask.azuremanaged.client import DurableTaskSchedulerClient
from durabletask.grpc_options import GrpcWorkerResiliencyOptions

from fakes import ScriptedChatClient, load_script, load_script_data
from harness.azurite import Azurite
from harness.host.sidecar.server import Sidecar

from .conftest import wait_for
from .test_sidecar_durability import SidecarProcess, kill, spawn, stop

SAMPLES = Path(__file__).resolve().parents[2] / "samples" / "durabletask"
WORKER_PROC = Path(__file__).resolve().parent / "af_worker_proc.py"


def load_sample(name: str) -> ModuleType:
    """samples/durabletask/<name>.py as a module (registered, so the workflow's types resolve by name)."""
    module_name = f"durabletask_sample_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, SAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


worker_sample = load_sample("worker")
client_sample = load_sample("client")


@pytest.fixture(scope="module")
def fake_model() -> ScriptedChatClient:
    """The sample's own fake model script, in this process (its requests are read by the tests)."""
    return ScriptedChatClient(load_script(SAMPLES / "fake_model.json"))


@pytest.fixture(scope="module")
def worker(sidecar: Sidecar, fake_model: ScriptedChatClient) -> Iterator[Any]:
    """The sample's worker, set up by the sample's own code, connected to the sidecar's hub."""
    quick = GrpcWorkerResiliencyOptions(reconnect_backoff_base_seconds=0.1, reconnect_backoff_cap_seconds=0.5)
    dts_worker = worker_sample.get_worker(sidecar.address, sidecar.hub, resiliency_options=quick)
    agent_worker = worker_sample.setup_worker(dts_worker, fake_model)
    agent_worker.start()
    try:
        yield agent_worker
    finally:
        agent_worker.stop()


@pytest.fixture(scope="module")
def client(sidecar: Sidecar, worker: Any) -> Iterator[DurableTaskSchedulerClient]:
    connected = client_sample.get_client(sidecar.address, sidecar.hub)
    yield connected
    connected.close()


def entity_state(base: str, session: str) -> dict[str, Any]:
    """An agent session's entity, read through the Durable HTTP API at `base` (a hub's host URL)."""
    parsed = AgentSessionId.parse(session)
    url = f"{base}/runtime/webhooks/durabletask/entities/{parsed.entity_name}/{parsed.key}"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def instance(sidecar: Sidecar, instance_id: str) -> dict[str, Any]:
    """An orchestration's status, with its history, through the sidecar's Durable HTTP API."""
    url = f"{sidecar.url}/runtime/webhooks/durabletask/instances/{instance_id}?showHistory=true"
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()


def conversation(state: dict[str, Any]) -> list[str]:
    """The texts of an agent entity's stored conversation, requests and replies in order."""
    texts = []
    for entry in state["data"]["conversationHistory"]:
        for message in entry["messages"]:
            texts.extend(c["text"] for c in message["contents"] if c.get("$type") == "text")
    return texts


def test_single_agent_keeps_its_session_across_turns(sidecar: Sidecar, client: Any, fake_model: Any) -> None:
    result = client_sample.single_agent(client_sample.agents(client, poll_seconds=0.05))
    assert result["replies"] == [
        "Good question. In short: What is a durable entity?",
        "Good question. In short: And why does it survive a crash?",
    ]
    # The second turn reached the model with the first turn's question and answer: the entity kept them.
    last = [m.text for m in fake_model.requests[-1].messages]
    assert last[-3:] == [
        "What is a durable entity?",
        result["replies"][0],
        "And why does it survive a crash?",
    ]
    listed = httpx.get(f"{sidecar.url}/runtime/webhooks/durabletask/entities/dafx-TutorAgent", timeout=10)
    assert AgentSessionId.parse(result["session"]).key in [e["entityId"]["key"] for e in listed.json()]
    assert conversation(entity_state(sidecar.url, result["session"])) == [
        "What is a durable entity?",
        result["replies"][0],
        "And why does it survive a crash?",
        result["replies"][1],
    ]


def test_two_agents_call_their_tools(client: Any) -> None:
    assert client_sample.multi_agent(client_sample.agents(client, poll_seconds=0.05)) == {
        "WeatherAgent": "Weather report: Oslo: 18 C, light wind.",
        "MathAgent": "The tip is $10.00.",
    }


def test_chaining_runs_one_agent_twice_on_one_session(sidecar: Sidecar, client: Any) -> None:
    result = client_sample.chaining(client)
    assert result["draft"] == "Acme Coffee: the coffee that remembers your name."
    assert result["tagline"] == "Acme Coffee. Remembered."
    assert conversation(entity_state(sidecar.url, result["session"])) == [
        "Write a tagline for Acme Coffee.",
        result["draft"],
        f"Make it shorter: {result['draft']}",
        result["tagline"],
    ]


def test_concurrency_fans_out_to_two_agents(client: Any) -> None:
    assert client_sample.concurrency(client) == {
        "PhysicistAgent": "Physics: What is temperature? comes down to energy and motion.",
        "ChemistAgent": "Chemistry: What is temperature? comes down to bonds and reactions.",
    }


def test_conditionals_branch_on_a_structured_verdict(client: Any) -> None:
    spam, ham = client_sample.conditionals(client)
    assert spam == {"id": "mail-1", "spam": True, "outcome": "quarantined: it says 'winner'"}
    assert ham == {
        "id": "mail-2",
        "spam": False,
        "outcome": "sent: Thanks for your note. Tuesday works for me.",
    }


def test_human_in_the_loop_revises_then_publishes(sidecar: Sidecar, client: Any) -> None:
    result = client_sample.human_in_the_loop(client)
    assert result["drafts"] == ["On durable agents: a first draft.", "Revised after 'shorter'."]
    assert result["output"] == {
        "status": "published",
        "attempts": 2,
        "result": "published: Revised after 'shorter'.",
    }
    events = [e["EventType"] for e in instance(sidecar, result["instance_id"])["historyEvents"]]
    assert events.count("EventRaised") == 2 and events.count("TimerCreated") == 2


def test_human_in_the_loop_times_out_without_an_answer(client: Any) -> None:
    instance_id = client.schedule_new_orchestration(
        "article_review", input={"topic": "silence", "timeout_seconds": 0.5, "max_attempts": 1}
    )
    state = client.wait_for_orchestration_completion(instance_id, timeout=60)
    assert client_sample.output(state) == {
        "status": "timed_out",
        "attempts": 1,
        "draft": "On silence: a first draft.",
    }


def test_workflow_pauses_for_sign_off_then_finishes(sidecar: Sidecar, client: Any) -> None:
    result = client_sample.workflow(client, approve=True)
    assert result["request"]["source_executor_id"] == "ask_for_sign_off"
    assert result["output"] == ["published: Meet Nimbus, made for note takers."]
    status = instance(sidecar, result["instance_id"])
    assert status["runtimeStatus"] == "Completed"


def test_a_worker_killed_mid_agent_call_leaves_the_call_to_the_next_worker(
    sidecar: Sidecar, tmp_path: Path
) -> None:
    """SIGKILL the worker while the agent's model call runs (its entity operation taken, not completed):
    a new worker gets the operation again, the orchestration completes, and the session holds each
    turn once (the killed worker's half-done turn left nothing behind)."""
    hub = "x" + uuid.uuid4().hex[:12]  # not the module's hub: its in-thread worker would take the work
    script = json.loads((SAMPLES / "fake_model.json").read_text(encoding="utf-8"))
    draft_rule = next(r for r in script["rules"] if "tagline for" in r["when"].get("user", ""))
    draft_rule["then"]["delay"] = 3600  # the first worker's model never answers the draft
    stuck = tmp_path / "stuck.json"
    stuck.write_text(json.dumps(script), encoding="utf-8")
    asked = tmp_path / "asked.jsonl"
    first = spawn(
        [sys.executable, str(WORKER_PROC), sidecar.address, hub, str(stuck), str(asked)],
        tmp_path / "first.log",
    )
    second = None
    client = client_sample.get_client(sidecar.address, hub)
    try:
        instance_id = client.schedule_new_orchestration("tagline_chain", input="Acme Coffee")
        wait_for(
            lambda: asked.is_file() and "tagline for Acme Coffee" in asked.read_text(encoding="utf-8"), 60
        )
        kill(first)
        again = tmp_path / "again.jsonl"
        second = spawn(
            [
                sys.executable,
                str(WORKER_PROC),
                sidecar.address,
                hub,
                str(SAMPLES / "fake_model.json"),
                str(again),
            ],
            tmp_path / "second.log",
        )
        state = client.wait_for_orchestration_completion(instance_id, timeout=60)
        result = client_sample.output(state)
        assert result["tagline"] == "Acme Coffee. Remembered."
        assert conversation(entity_state(sidecar.hubs[hub.lower()].local.url, result["session"])) == [
            "Write a tagline for Acme Coffee.",
            result["draft"],
            f"Make it shorter: {result['draft']}",
            result["tagline"],
        ]
        assert (
            len(again.read_text(encoding="utf-8").splitlines()) == 2
        )  # the draft again, then the improvement
    finally:
        client.close()
        for proc in (first, second):
            if proc is not None:
                stop(proc)


def test_workflow_branches_on_the_screeners_verdict_and_streams_its_events(client: Any) -> None:
    result = asyncio.run(client_sample.workflow_branches(client))
    assert result["spam"] == ["junk: it says 'winner'"]
    assert result["reply"] == ["sent: Thanks for your note. Tuesday works for me."]
    assert "junk" not in result["executors"] and "outbox" in result["executors"]


def test_sub_workflow_asks_a_person_through_its_child_orchestration(sidecar: Sidecar, client: Any) -> None:
    result = client_sample.sub_workflow(client, approve=True)
    assert result["request"]["request_id"].startswith("refund_review~0~")
    assert result["output"] == ["order o-17 refunded (Refund 25.00 for o-17: the reason holds.)"]
    events = [e["EventType"] for e in instance(sidecar, result["instance_id"])["historyEvents"]]
    assert "SubOrchestrationInstanceCompleted" in events


def test_a_sidecar_killed_mid_agent_call_gets_the_turn_recorded_once(
    azurite: Azurite, tmp_path: Path
) -> None:
    """SIGKILL the sidecar while an agent's model call runs in the worker: the worker's answer goes
    nowhere, the restarted sidecar hands the entity operation out again, and the session holds the
    turn once although the model answered twice (at-least-once, as on Azure)."""
    entered, release = threading.Event(), threading.Event()
    drafts: list[str] = []

    def slow_draft(request: Any) -> dict[str, str]:
        drafts.append(request.user_text)
        entered.set()
        release.wait(30)
        return {"text": "Acme Coffee: the coffee that remembers your name."}

    script = load_script_data(SAMPLES / "fake_model.json")
    first = {"when": {"user": "^Write a tagline"}, "then": {"fn": slow_draft}}
    model = ScriptedChatClient(rules=[first, *script["rules"]], default=script["default"])
    process = SidecarProcess(azurite.connection_string, tmp_path)
    process.start()
    quick = GrpcWorkerResiliencyOptions(reconnect_backoff_base_seconds=0.1, reconnect_backoff_cap_seconds=0.5)
    dts_worker = worker_sample.get_worker(process.address, process.hub, resiliency_options=quick)
    worker_sample.setup_worker(dts_worker, model)
    dts_worker.start()
    try:
        client = client_sample.get_client(process.address, process.hub)
        instance_id = client.schedule_new_orchestration("tagline_chain", input="Acme Coffee")
        client.close()
        assert entered.wait(30), "the draft's model call never started"
        assert process.process is not None
        kill(process.process)  # SIGKILL while the model answers
        release.set()  # the worker's completion goes nowhere: the sidecar that asked is gone
        process.start()
        # Watched over HTTP: gRPC channels to the address share a connection in reconnect back-off.
        wait_for(lambda: process.finished(instance_id), 60)
        body = process.instance(instance_id)
        session = entity_state(process.url, body["output"]["session"])
    finally:
        dts_worker.stop()
        assert process.process is not None
        stop(process.process)
    assert body["runtimeStatus"] == "Completed", body
    assert body["output"]["tagline"] == "Acme Coffee. Remembered."
    assert drafts == ["Write a tagline for Acme Coffee."] * 2  # the model was asked again after the restart
    session_texts = conversation(session)
    assert session_texts == [
        "Write a tagline for Acme Coffee.",
        "Acme Coffee: the coffee that remembers your name.",
        "Make it shorter: Acme Coffee: the coffee that remembers your name.",
        "Acme Coffee. Remembered.",
    ]
    # The second turn, after the restart, reached the model with the first turn from the stored session.
    assert [m.text for m in model.requests[-1].messages][-3:] == session_texts[:3]
