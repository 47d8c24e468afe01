"""Entities through the sidecar with Microsoft's durabletask worker and client: signals applied in
order by the entity's worker, state read back, entities listed, signals an entity sends."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import aiohttp
import grpc
import pytest
from durabletask import client as dt_client
from durabletask import entities, task
from durabletask.internal import orchestrator_service_pb2 as pb
from durabletask.internal import orchestrator_service_pb2_grpc as stubs

from harness.host.sidecar.server import Sidecar

from .conftest import new_client, running_worker, wait_for


def counter(ctx: entities.EntityContext, value: Any) -> Any:
    state = ctx.get_state(int, 0)
    if ctx.operation == "add":
        ctx.set_state(state + int(value))
    elif ctx.operation == "forward":  # add here, and the same to another counter
        ctx.set_state(state + 1)
        ctx.signal_entity(entities.EntityInstanceId("counter", str(value)), "add", 1)
    elif ctx.operation == "reset":
        ctx.set_state(None)
    elif ctx.operation == "boom":
        raise ValueError("no such thing")
    return state


def tally(ctx: task.OrchestrationContext, key: str) -> Any:
    """Calls and signals an entity from an orchestration; a failing call raises in the orchestrator."""
    entity = entities.EntityInstanceId("counter", key)
    yield ctx.call_entity(entity, "add", 5)
    ctx.signal_entity(entity, "add", 10)
    before = yield ctx.call_entity(entity, "add", 0)  # after the signal: operations apply in order
    try:
        yield ctx.call_entity(entity, "boom")
    except task.TaskFailedError as exc:
        return {"before": before, "error": str(exc)}
    return {"before": before, "error": None}


@pytest.fixture(scope="module")
def client(sidecar: Sidecar) -> Iterator[dt_client.TaskHubGrpcClient]:
    with running_worker(sidecar.address, [tally], [], [counter]):
        connected = new_client(sidecar.address)
        yield connected
        connected.close()


def state_of(client: dt_client.TaskHubGrpcClient, entity: entities.EntityInstanceId) -> Any:
    found = client.get_entity(entity)
    return None if found is None else found.get_state(int)


def test_signals_are_applied_in_order(client: dt_client.TaskHubGrpcClient) -> None:
    entity = entities.EntityInstanceId("counter", uuid.uuid4().hex)
    for n in range(1, 6):
        client.signal_entity(entity, "add", n)
    wait_for(lambda: state_of(client, entity) == 15)
    client.signal_entity(entity, "boom")  # a failing operation changes nothing and stops nothing
    client.signal_entity(entity, "add", 1)
    wait_for(lambda: state_of(client, entity) == 16)


def test_an_entity_signals_another(client: dt_client.TaskHubGrpcClient) -> None:
    source, target = uuid.uuid4().hex, uuid.uuid4().hex
    client.signal_entity(entities.EntityInstanceId("counter", source), "forward", target)
    wait_for(lambda: state_of(client, entities.EntityInstanceId("counter", target)) == 1)
    assert state_of(client, entities.EntityInstanceId("counter", source)) == 1


def test_deleted_state_and_query(client: dt_client.TaskHubGrpcClient) -> None:
    prefix = uuid.uuid4().hex[:8]
    ids = [entities.EntityInstanceId("counter", f"{prefix}-{n}") for n in range(3)]
    for entity in ids:
        client.signal_entity(entity, "add", 2)
    wait_for(lambda: all(state_of(client, e) == 2 for e in ids))
    client.signal_entity(ids[0], "reset")
    wait_for(lambda: client.get_entity(ids[0]) is None)
    query = dt_client.EntityQuery(instance_id_starts_with=f"@counter@{prefix}", include_state=True)
    found = client.get_all_entities(query)
    assert sorted(str(e.id) for e in found) == [str(e) for e in ids[1:]]
    assert all(e.get_state(int) == 2 for e in found)


def test_bad_entity_ids_are_named(sidecar: Sidecar) -> None:
    with grpc.insecure_channel(sidecar.address) as channel:
        stub = stubs.TaskHubSidecarServiceStub(channel)
        with pytest.raises(grpc.RpcError) as raised:
            stub.GetEntity(pb.GetEntityRequest(instanceId="not-an-entity"))
        assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "not an entity id" in str(raised.value.details())


def test_orchestration_calls_and_signals_an_entity(client: dt_client.TaskHubGrpcClient) -> None:
    key = uuid.uuid4().hex
    iid = client.schedule_new_orchestration(tally, input=key, instance_id=f"t-{key[:12]}")
    state = client.wait_for_orchestration_completion(iid, timeout=30)
    assert state is not None and state.runtime_status == dt_client.OrchestrationStatus.COMPLETED, state
    output = json.loads(state.serialized_output)
    assert output["before"] == 15  # the value before `add 0`: 5 called, 10 signalled
    assert output["error"] and "no such thing" in output["error"]
    assert state_of(client, entities.EntityInstanceId("counter", key)) == 15


async def test_http_api_shows_the_entities(client: dt_client.TaskHubGrpcClient, sidecar: Sidecar) -> None:
    key = uuid.uuid4().hex
    client.signal_entity(entities.EntityInstanceId("counter", key), "add", 7)
    wait_for(lambda: state_of(client, entities.EntityInstanceId("counter", key)) == 7)
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{sidecar.url}/runtime/webhooks/durabletask/entities/counter/{key}") as response:
            assert response.status == 200, await response.text()
            assert await response.json() == 7
