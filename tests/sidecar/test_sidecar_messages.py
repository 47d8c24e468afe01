"""Orchestrations and entities acting on other instances through the sidecar: `send_event` with
Microsoft's worker, the `terminateOrchestration` action (no durabletask API sends it: a worker speaking
the protocol directly), terminating an instance with its sub-orchestrations (`recursive`), and an
entity starting an orchestration."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest
from durabletask import client as dt_client
from durabletask import entities, task
from durabletask.history import EventSentEvent
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs
from google.protobuf import wrappers_pb2

from harness.host.sidecar.server import Sidecar

from .conftest import SidecarProcess, kill, new_client, new_id, running_worker, wait_for
from .test_sidecar_locks import stays

Status = dt_client.OrchestrationStatus


def waiter(ctx: task.OrchestrationContext, _: Any) -> Any:
    """Waits for `approve` and returns what came with it."""
    return (yield ctx.wait_for_external_event("approve"))


def sender(ctx: task.OrchestrationContext, target: str) -> Any:
    ctx.send_event(target, "approve", data={"by": ctx.instance_id})
    return "sent"


def holder(ctx: task.OrchestrationContext, child: str) -> Any:
    """Starts `waiter` as its child under the id given and waits for it."""
    return (yield ctx.call_sub_orchestrator(waiter, instance_id=child))


def launcher(ctx: entities.EntityContext, iid: str | None) -> Any:
    """Starts `waiter` under the id given (a generated one for None) and remembers it."""
    ctx.set_state(ctx.schedule_new_orchestration("waiter", input=None, instance_id=iid))


@pytest.fixture(scope="module")
def client(sidecar: Sidecar) -> Iterator[dt_client.TaskHubGrpcClient]:
    with running_worker(sidecar.address, [waiter, sender, holder], [], [launcher]):
        connected = new_client(sidecar.address)
        yield connected
        connected.close()


def status(client: dt_client.TaskHubGrpcClient, iid: str) -> Status | None:
    state = client.get_orchestration_state(iid)
    return None if state is None else state.runtime_status


def test_an_orchestration_sends_an_event_to_another(client: dt_client.TaskHubGrpcClient) -> None:
    target = client.schedule_new_orchestration(waiter, instance_id=new_id("w"))
    client.wait_for_orchestration_start(target, timeout=30)
    source = client.schedule_new_orchestration(sender, input=target, instance_id=new_id("s"))
    done = client.wait_for_orchestration_completion(source, timeout=30)
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    done = client.wait_for_orchestration_completion(target, timeout=30)
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    assert json.loads(done.serialized_output) == {"by": source}
    history = client.get_orchestration_history(source)
    sent = [e for e in history if isinstance(e, EventSentEvent)]
    assert [(e.instance_id, e.name) for e in sent] == [(target, "approve")]


def test_terminate_takes_the_running_children_along(client: dt_client.TaskHubGrpcClient) -> None:
    child = new_id("c")
    parent = client.schedule_new_orchestration(holder, input=child, instance_id=new_id("p"))
    wait_for(lambda: status(client, child) == Status.RUNNING)
    client.terminate_orchestration(parent, output="enough")  # recursive by default
    wait_for(
        lambda: status(client, parent) == Status.TERMINATED and status(client, child) == Status.TERMINATED
    )
    alone = new_id("c")
    parent = client.schedule_new_orchestration(holder, input=alone, instance_id=new_id("p"))
    wait_for(lambda: status(client, alone) == Status.RUNNING)
    client.terminate_orchestration(parent, output="only you", recursive=False)
    wait_for(lambda: status(client, parent) == Status.TERMINATED)
    assert status(client, alone) == Status.RUNNING
    client.raise_orchestration_event(alone, "approve", data="still here")
    done = client.wait_for_orchestration_completion(alone, timeout=30)
    assert done is not None and json.loads(done.serialized_output) == "still here"


def test_the_terminate_action(sidecar: Sidecar) -> None:
    """A worker that answers `stopper`'s episode with a terminateOrchestration action for another
    instance (an orchestration `idle` with no actions) and completes it."""
    hub = [("taskhub", "t" + uuid.uuid4().hex[:12])]  # a hub of its own: this worker is its only one
    idle, stopper = new_id("idle"), new_id("stop")
    with grpc.insecure_channel(sidecar.address) as channel:
        stub = stubs.TaskHubSidecarServiceStub(channel)
        stream = stub.GetWorkItems(pb.GetWorkItemsRequest(), metadata=hub)
        answered: list[str] = []

        def work() -> None:
            try:
                serve()
            except grpc.RpcError as exc:
                assert exc.code() == grpc.StatusCode.CANCELLED, exc  # the test's end

        def serve() -> None:
            for item in stream:
                if not item.HasField("orchestratorRequest"):
                    continue
                request = item.orchestratorRequest
                response = pb.OrchestratorResponse(
                    instanceId=request.instanceId, completionToken=item.completionToken
                )
                if request.instanceId == stopper:
                    reason = wrappers_pb2.StringValue(value=json.dumps("stopped by an orchestration"))
                    end = pb.TerminateOrchestrationAction(instanceId=idle, reason=reason)
                    done = pb.CompleteOrchestrationAction(
                        orchestrationStatus=pb.ORCHESTRATION_STATUS_COMPLETED
                    )
                    response.actions.add(id=1, terminateOrchestration=end)
                    response.actions.add(id=2, completeOrchestration=done)
                stub.CompleteOrchestratorTask(response, metadata=hub)
                answered.append(request.instanceId)

        thread = threading.Thread(target=work, daemon=True)
        thread.start()
        try:
            stub.StartInstance(pb.CreateInstanceRequest(instanceId=idle, name="idle"), metadata=hub)
            wait_for(lambda: idle in answered)
            stub.StartInstance(pb.CreateInstanceRequest(instanceId=stopper, name="stopper"), metadata=hub)

            def state(iid: str) -> pb.OrchestrationState:
                found = stub.GetInstance(
                    pb.GetInstanceRequest(instanceId=iid, getInputsAndOutputs=True), metadata=hub
                )
                return found.orchestrationState

            wait_for(lambda: state(idle).orchestrationStatus == pb.ORCHESTRATION_STATUS_TERMINATED)
            assert json.loads(state(idle).output.value) == "stopped by an orchestration"
            assert state(stopper).orchestrationStatus == pb.ORCHESTRATION_STATUS_COMPLETED
        finally:
            stream.cancel()
            thread.join(10)


def test_an_entity_starts_an_orchestration(client: dt_client.TaskHubGrpcClient) -> None:
    iid = new_id("e")
    entity = entities.EntityInstanceId("launcher", uuid.uuid4().hex[:8])
    client.signal_entity(entity, "launch", iid)
    wait_for(lambda: status(client, iid) == Status.RUNNING)
    client.raise_orchestration_event(iid, "approve", data="from the test")
    done = client.wait_for_orchestration_completion(iid, timeout=30)
    assert done is not None and json.loads(done.serialized_output) == "from the test"
    found = client.get_entity(entity)
    assert found is not None and found.get_typed_state() == iid


def test_an_entitys_start_is_not_done_again_after_a_restart(sidecar_process: SidecarProcess) -> None:
    """The start is in the entity's committed outbox, emptied once started (a restart starts what is
    left there again, under the execution id it was given, so one started already is left alone):
    the instance is started once, and one purged since is not started again."""
    entity = entities.EntityInstanceId("launcher", uuid.uuid4().hex[:8])
    with running_worker(sidecar_process.address, [waiter], [], [launcher]):
        client = new_client(sidecar_process.address)
        client.signal_entity(entity, "launch", None)  # an id the SDK generates
        wait_for(lambda: client.get_entity(entity) is not None)
        iid = client.get_entity(entity).get_typed_state()
        wait_for(lambda: client.get_orchestration_state(iid) is not None)  # started after the commit
        client.raise_orchestration_event(iid, "approve", data="once")
        done = client.wait_for_orchestration_completion(iid, timeout=30)
        assert done is not None and done.runtime_status == Status.COMPLETED, done
        client.close()
        assert sidecar_process.process is not None
        kill(sidecar_process.process)
        sidecar_process.start()
        assert stays(lambda: sidecar_process.instance(iid)["runtimeStatus"] == "Completed", 2.0)
        listed = sidecar_process.api("GET", "/instances")
        assert [i["instanceId"] for i in listed] == [iid]  # one instance: started once
        sidecar_process.api("DELETE", f"/instances/{iid}")  # purged: a later start-up leaves it so
        kill(sidecar_process.process)
        sidecar_process.start()
        assert stays(lambda: sidecar_process.api("GET", "/instances") == [], 2.0)
