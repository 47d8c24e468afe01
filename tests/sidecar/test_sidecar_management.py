"""Managing instances and entities through the sidecar with Microsoft's client: entities of every
name, finished instance ids page by page, rewinding a failed instance, purging one with its
sub-orchestrations, and cleaning entity storage (orphaned locks, empty entities)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from durabletask import client as dt_client
from durabletask import entities, task

from harness.host.sidecar.server import Sidecar

from .conftest import new_client, new_id, running_worker, wait_for
from .test_sidecar_entities import counter, state_of
from .test_sidecar_locks import holding, keys, transfer

Status = dt_client.OrchestrationStatus


def gauge(ctx: entities.EntityContext, value: Any) -> Any:
    ctx.set_state(value)


FAILURES: dict[str, int] = {}


def fails_once(ctx: task.ActivityContext, key: str) -> str:
    FAILURES[key] = FAILURES.get(key, 0) + 1
    if FAILURES[key] == 1:
        raise RuntimeError("the first time fails")
    return f"worked on call {FAILURES[key]}"


def shaky(ctx: task.OrchestrationContext, key: str) -> Any:
    return (yield ctx.call_activity(fails_once, input=key))


def child(ctx: task.OrchestrationContext, _: Any) -> Any:
    return "child done"


def parent(ctx: task.OrchestrationContext, child_id: str) -> Any:
    return (yield ctx.call_sub_orchestrator(child, instance_id=child_id))


@pytest.fixture(scope="module")
def client(sidecar: Sidecar) -> Iterator[dt_client.TaskHubGrpcClient]:
    with running_worker(sidecar.address, [shaky, child, parent, transfer], [fails_once], [counter, gauge]):
        connected = new_client(sidecar.address)
        yield connected
        connected.close()


def finish(client: dt_client.TaskHubGrpcClient, iid: str) -> dt_client.OrchestrationState:
    state = client.wait_for_orchestration_completion(iid, timeout=30)
    assert state is not None
    return state


def test_query_entities_of_every_name(client: dt_client.TaskHubGrpcClient) -> None:
    key = uuid.uuid4().hex[:8]
    ids = [entities.EntityInstanceId("counter", key), entities.EntityInstanceId("gauge", key)]
    client.signal_entity(ids[0], "add", 1)
    client.signal_entity(ids[1], "set", 2)
    wait_for(lambda: all(client.get_entity(e) is not None for e in ids))
    everything = {str(e.id) for e in client.get_all_entities(dt_client.EntityQuery())}
    assert {str(e) for e in ids} <= everything
    some = client.get_all_entities(dt_client.EntityQuery(instance_id_starts_with="@GAU", include_state=True))
    assert {str(e.id) for e in some} == {i for i in everything if i.startswith("@gauge@")}
    assert str(ids[1]) in {str(e.id) for e in some}


def test_list_instance_ids_page_by_page(client: dt_client.TaskHubGrpcClient) -> None:
    started = [client.schedule_new_orchestration(child, instance_id=new_id("l")) for _ in range(3)]
    ends = [finish(client, iid) for iid in started]
    assert all(s.runtime_status == Status.COMPLETED for s in ends)
    since = min(s.last_updated_at for s in ends) - timedelta(seconds=1)
    seen: list[str] = []
    token = None
    while True:
        page = client.list_instance_ids(
            runtime_status=[Status.COMPLETED],
            completed_time_from=since,
            page_size=2,
            continuation_token=token,
        )
        assert len(page.items) <= 2
        seen.extend(page.items)
        token = page.continuation_token
        if token is None:
            break
    assert set(started) <= set(seen) and len(seen) == len(set(seen))


def test_rewind_a_failed_instance(client: dt_client.TaskHubGrpcClient) -> None:
    key = uuid.uuid4().hex
    iid = client.schedule_new_orchestration(shaky, input=key, instance_id=new_id("r"))
    assert finish(client, iid).runtime_status == Status.FAILED
    client.rewind_orchestration(iid, reason="fixed")
    done = finish(client, iid)
    assert done.runtime_status == Status.COMPLETED, done
    assert json.loads(done.serialized_output) == "worked on call 2"


def test_purge_with_the_sub_orchestrations(client: dt_client.TaskHubGrpcClient) -> None:
    kid = new_id("k")
    iid = client.schedule_new_orchestration(parent, input=kid, instance_id=new_id("p"))
    assert finish(client, iid).runtime_status == Status.COMPLETED
    assert client.purge_orchestration(iid, recursive=False).deleted_instance_count == 1
    assert client.get_orchestration_state(kid) is not None
    kid = new_id("k")
    iid = client.schedule_new_orchestration(parent, input=kid, instance_id=new_id("p"))
    assert finish(client, iid).runtime_status == Status.COMPLETED
    assert client.purge_orchestration(iid).deleted_instance_count == 2  # recursive by default
    assert client.get_orchestration_state(kid) is None and client.get_orchestration_state(iid) is None


def test_clean_entity_storage(client: dt_client.TaskHubGrpcClient) -> None:
    pair = keys()
    first = entities.EntityInstanceId("counter", pair[0])
    holder = client.schedule_new_orchestration(
        transfer, input={"keys": pair, "hold": True}, instance_id=new_id()
    )
    wait_for(lambda: holding(client, holder))
    client.purge_orchestration(holder)  # gone while its section holds the locks: orphaned
    client.signal_entity(first, "add", 100)
    emptied = entities.EntityInstanceId("counter", uuid.uuid4().hex[:8])
    client.signal_entity(emptied, "add", 1)
    wait_for(lambda: state_of(client, emptied) == 1)  # a row with state, then none: an empty entity
    client.signal_entity(emptied, "reset")
    wait_for(lambda: state_of(client, first) == -1 and client.get_entity(emptied) is None)
    result = client.clean_entity_storage()
    assert result.orphaned_locks_released == 2  # both entities of the set
    assert result.empty_entities_removed >= 1
    wait_for(lambda: state_of(client, first) == 99)  # the signal that waited for the lock
