"""Entity locks and critical sections through the sidecar with Microsoft's durabletask worker and
client: `lock_entities` grants every entity of the set, calls inside the section are applied, other
operations (a client's signal, a second orchestration's lock) wait until the section ends, and the
locks are released at its end, when the orchestration fails inside it, and when it is terminated; a lock held
survives a SIGKILL of the sidecar."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import grpc
import pytest
from durabletask import client as dt_client
from durabletask import entities, task
from durabletask.history import EntityLockRequestedEvent
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs

from harness.host.sidecar.server import Sidecar

from .conftest import SidecarProcess, kill, new_client, new_id, running_worker, wait_for
from .test_sidecar_entities import counter, state_of

Status = dt_client.OrchestrationStatus


def transfer(ctx: task.OrchestrationContext, spec: dict[str, Any]) -> Any:
    """Locks two counters, moves one from the first to the second, and (when asked) holds the locks
    until the event `go`; returns what each call inside the section saw."""
    first = entities.EntityInstanceId("counter", spec["keys"][0])
    second = entities.EntityInstanceId("counter", spec["keys"][1])
    with (yield ctx.lock_entities([second, first])):
        seen = [(yield ctx.call_entity(first, "add", -1)), (yield ctx.call_entity(second, "add", 1))]
        if spec.get("hold"):
            ctx.set_custom_status("holding")
            yield ctx.wait_for_external_event("go")
        seen.append((yield ctx.call_entity(first, "add", 0)))
    return seen


def failing_section(ctx: task.OrchestrationContext, key: str) -> Any:
    """Fails inside its critical section (the entity operation's failure is not caught)."""
    entity = entities.EntityInstanceId("counter", key)
    with (yield ctx.lock_entities([entity])):
        yield ctx.call_entity(entity, "boom")
    return "unreachable"


def register(ctx: entities.EntityContext, value: Any) -> Any:
    """`get` answers the state, `set` replaces it: a read-modify-write needs a lock to be safe."""
    if ctx.operation == "set":
        ctx.set_state(value)
    return ctx.get_state(int, 0)


def increment(ctx: task.OrchestrationContext, spec: dict[str, Any]) -> Any:
    """Reads both registers and writes each back plus one, inside one critical section."""
    ids = [entities.EntityInstanceId("register", k) for k in spec["keys"]]
    with (yield ctx.lock_entities(ids if spec["forward"] else ids[::-1])):
        for entity in ids:
            value = yield ctx.call_entity(entity, "get")
            yield ctx.call_entity(entity, "set", value + 1)
    return "done"


def impatient(ctx: task.OrchestrationContext, pair: list[str]) -> Any:
    """Gives up waiting for its locks after a second."""
    wanted = [entities.EntityInstanceId("counter", k) for k in pair]
    lock = ctx.lock_entities(wanted)
    winner = yield task.when_any([lock, ctx.create_timer(timedelta(seconds=1))])
    return "locked" if winner == lock else "gave up"


def relock(ctx: task.OrchestrationContext, spec: dict[str, Any]) -> Any:
    """Adds one inside a critical section, and continues as new from inside it twice."""
    entity = entities.EntityInstanceId("counter", spec["key"])
    with (yield ctx.lock_entities([entity])):
        seen = yield ctx.call_entity(entity, "add", 1)
        if spec["round"] < 2:
            ctx.continue_as_new({"key": spec["key"], "round": spec["round"] + 1})
            return None
    return seen


@pytest.fixture(scope="module")
def client(sidecar: Sidecar) -> Iterator[dt_client.TaskHubGrpcClient]:
    orchestrators = [transfer, failing_section, increment, impatient, relock]
    with running_worker(sidecar.address, orchestrators, [], [counter, register]):
        connected = new_client(sidecar.address)
        yield connected
        connected.close()


def holding(client: dt_client.TaskHubGrpcClient, iid: str) -> bool:
    state = client.get_orchestration_state(iid)
    return state is not None and state.serialized_custom_status == json.dumps("holding")


def stays(condition: Any, seconds: float = 0.5) -> bool:
    """True when `condition` holds throughout `seconds` (a check that something does not happen)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not condition():
            return False
        time.sleep(0.05)
    return True


def keys() -> list[str]:
    return [uuid.uuid4().hex[:10] for _ in range(2)]


def locked_by(sidecar: Sidecar, entity: entities.EntityInstanceId) -> str | None:
    """The entity's `lockedBy` as the protocol gives it (the SDK's `get_locked_by` reads it as an
    entity id; the Durable Task Framework, and the sidecar, give the orchestration's instance id)."""
    with grpc.insecure_channel(sidecar.address) as channel:
        found = stubs.TaskHubSidecarServiceStub(channel).GetEntity(
            pb.GetEntityRequest(instanceId=str(entity))
        )
    return found.entity.lockedBy.value if found.exists and found.entity.HasField("lockedBy") else None


def test_critical_section_defers_others_until_released(
    client: dt_client.TaskHubGrpcClient, sidecar: Sidecar
) -> None:
    pair = keys()
    first = entities.EntityInstanceId("counter", pair[0])
    client.signal_entity(first, "add", 10)
    wait_for(lambda: state_of(client, first) == 10)
    holder = client.schedule_new_orchestration(
        transfer, input={"keys": pair, "hold": True}, instance_id=new_id()
    )
    wait_for(lambda: holding(client, holder))
    assert locked_by(sidecar, first) == holder
    client.signal_entity(first, "add", 100)  # waits: the entity is locked by `holder`
    waiter = client.schedule_new_orchestration(transfer, input={"keys": pair}, instance_id=new_id())
    client.wait_for_orchestration_start(waiter, timeout=30)
    assert stays(lambda: client.get_orchestration_state(waiter).runtime_status == Status.RUNNING)
    assert state_of(client, first) == 9
    client.raise_orchestration_event(holder, "go")
    done = client.wait_for_orchestration_completion(holder, timeout=30)
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    assert json.loads(done.serialized_output) == [10, 0, 9]  # the signal did not slip in
    done = client.wait_for_orchestration_completion(waiter, timeout=30)
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    assert json.loads(done.serialized_output) == [109, 1, 108]  # after the released signal
    wait_for(lambda: locked_by(sidecar, first) is None)


def test_failure_inside_the_section_releases_the_lock(client: dt_client.TaskHubGrpcClient) -> None:
    pair = keys()
    failed = client.schedule_new_orchestration(failing_section, input=pair[0], instance_id=new_id())
    done = client.wait_for_orchestration_completion(failed, timeout=30)
    assert done is not None and done.runtime_status == Status.FAILED, done
    assert "no such thing" in str(done.failure_details.message)
    after = client.schedule_new_orchestration(transfer, input={"keys": pair}, instance_id=new_id())
    done = client.wait_for_orchestration_completion(after, timeout=30)
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    assert json.loads(done.serialized_output) == [0, 0, -1]


def test_terminating_the_holder_releases_its_locks(client: dt_client.TaskHubGrpcClient) -> None:
    pair = keys()
    holder = client.schedule_new_orchestration(
        transfer, input={"keys": pair, "hold": True}, instance_id=new_id()
    )
    wait_for(lambda: holding(client, holder))
    waiter = client.schedule_new_orchestration(transfer, input={"keys": pair}, instance_id=new_id())
    client.terminate_orchestration(holder, output="stop")
    done = client.wait_for_orchestration_completion(waiter, timeout=30)
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    assert json.loads(done.serialized_output) == [-1, 1, -2]


def test_a_held_lock_survives_a_sidecar_kill(sidecar_process: SidecarProcess) -> None:
    pair = keys()
    with running_worker(sidecar_process.address, [transfer], [], [counter]):
        client = new_client(sidecar_process.address)
        holder = client.schedule_new_orchestration(
            transfer, input={"keys": pair, "hold": True}, instance_id=new_id()
        )
        wait_for(lambda: holding(client, holder))
        client.close()
        assert sidecar_process.process is not None
        kill(sidecar_process.process)  # SIGKILL while the section holds both locks
        sidecar_process.start()
        sidecar_process.api("POST", f"/entities/counter/{pair[0]}?op=add", 100)  # must wait
        sidecar_process.api("POST", f"/instances/{holder}/raiseEvent/go", "now")
        wait_for(lambda: sidecar_process.finished(holder), 60)
        body = sidecar_process.instance(holder)
        assert body["runtimeStatus"] == "Completed", body
        assert body["output"] == [0, 0, -1]  # the signal did not slip into the section
        wait_for(lambda: sidecar_process.api("GET", f"/entities/counter/{pair[0]}") == 99)


def test_sections_over_the_same_entities_exclude_each_other(client: dt_client.TaskHubGrpcClient) -> None:
    pair = keys()
    started = [
        client.schedule_new_orchestration(increment, input={"keys": pair, "forward": n % 2 == 0})
        for n in range(6)
    ]  # the sets are asked for in both orders: locked in one order, they never deadlock
    for iid in started:
        done = client.wait_for_orchestration_completion(iid, timeout=60)
        assert done is not None and done.runtime_status == Status.COMPLETED, done
    for key in pair:  # no update lost: each section saw the previous one's writes
        found = client.get_entity(entities.EntityInstanceId("register", key))
        assert found is not None and found.get_typed_state() == 6


def lock_requested(client: dt_client.TaskHubGrpcClient, iid: str) -> bool:
    return any(isinstance(e, EntityLockRequestedEvent) for e in client.get_orchestration_history(iid))


def test_a_terminated_waiter_leaves_no_lock_behind(
    client: dt_client.TaskHubGrpcClient, sidecar: Sidecar
) -> None:
    """A section terminated while its request waits at the first entity: the unlock reaches the
    second entity (which has no row yet) first, and the request passed on there later is dropped."""
    shared, other, fresh = "a" + uuid.uuid4().hex[:8], uuid.uuid4().hex[:8], "z" + uuid.uuid4().hex[:8]
    holder = client.schedule_new_orchestration(
        transfer, input={"keys": [shared, other], "hold": True}, instance_id=new_id()
    )
    wait_for(lambda: holding(client, holder))
    waiter = client.schedule_new_orchestration(
        transfer, input={"keys": [shared, fresh]}, instance_id=new_id()
    )
    wait_for(lambda: lock_requested(client, waiter))  # queued at `shared`, behind the holder's lock
    client.terminate_orchestration(waiter, output="gone")
    client.wait_for_orchestration_completion(waiter, timeout=30)
    client.raise_orchestration_event(holder, "go")
    assert client.wait_for_orchestration_completion(holder, timeout=30).runtime_status == Status.COMPLETED
    after = client.schedule_new_orchestration(transfer, input={"keys": [shared, fresh]}, instance_id=new_id())
    done = client.wait_for_orchestration_completion(after, timeout=30)
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    fresh_id = entities.EntityInstanceId("counter", fresh)
    wait_for(lambda: locked_by(sidecar, fresh_id) is None)


def test_an_orchestration_that_gives_up_waiting_ends_at_once(
    client: dt_client.TaskHubGrpcClient, sidecar: Sidecar
) -> None:
    """Its unlocks go to entities locked by another section: they are applied at once (they only mark
    the section released there), so the instance ends without waiting for the other section."""
    shared, other, fresh = "a" + uuid.uuid4().hex[:8], uuid.uuid4().hex[:8], "z" + uuid.uuid4().hex[:8]
    holder = client.schedule_new_orchestration(
        transfer, input={"keys": [shared, other], "hold": True}, instance_id=new_id()
    )
    wait_for(lambda: holding(client, holder))
    quitter = client.schedule_new_orchestration(impatient, input=[shared, fresh], instance_id=new_id())
    done = client.wait_for_orchestration_completion(quitter, timeout=30)
    assert done is not None and json.loads(done.serialized_output) == "gave up"
    assert holding(client, holder)  # the holder still holds its section
    client.raise_orchestration_event(holder, "go")
    assert client.wait_for_orchestration_completion(holder, timeout=30).runtime_status == Status.COMPLETED
    after = client.schedule_new_orchestration(transfer, input={"keys": [shared, fresh]}, instance_id=new_id())
    done = client.wait_for_orchestration_completion(after, timeout=30)
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    wait_for(lambda: locked_by(sidecar, entities.EntityInstanceId("counter", shared)) is None)


def test_continue_as_new_inside_a_section_releases_it(client: dt_client.TaskHubGrpcClient) -> None:
    key = uuid.uuid4().hex[:8]
    iid = client.schedule_new_orchestration(relock, input={"key": key, "round": 0}, instance_id=new_id())
    done = client.wait_for_orchestration_completion(iid, timeout=30)
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    assert json.loads(done.serialized_output) == 2  # three sections, one after the other
