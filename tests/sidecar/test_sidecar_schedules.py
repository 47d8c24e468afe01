"""Scheduled starts and scheduled entity signals through the sidecar, on a manual virtual clock (the
host's clock: nothing is due until the test moves it): an instance started for later stays Pending,
a signal for later is not applied, until the clock gets there; both survive a SIGKILL of the sidecar
(a sidecar in a process of its own, on real time)."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from durabletask import client as dt_client
from durabletask import entities, task

from harness.host.sidecar.server import Sidecar

from .conftest import SidecarProcess, kill, new_client, new_id, running_worker, wait_for
from .test_sidecar_entities import counter, state_of
from .test_sidecar_locks import stays

SIDECAR_TIME = "manual"  # the conftest's sidecar runs on a manual virtual clock
Status = dt_client.OrchestrationStatus


def greet(ctx: task.OrchestrationContext, name: str) -> Any:
    return {"hello": name, "at": ctx.current_utc_datetime.isoformat()}


def later(ctx: task.OrchestrationContext, key: str) -> Any:
    """Signals a counter for an hour from now and ends at once."""
    due = ctx.current_utc_datetime + timedelta(hours=1)
    ctx.signal_entity(entities.EntityInstanceId("counter", key), "add", 5, signal_time=due)
    return "sent"


@pytest.fixture(scope="module")
def client(sidecar: Sidecar) -> Iterator[dt_client.TaskHubGrpcClient]:
    with running_worker(sidecar.address, [greet, later], [], [counter]):
        connected = new_client(sidecar.address)
        yield connected
        connected.close()


def clock(sidecar: Sidecar, advance: str | None = None) -> dict[str, Any]:
    """The hub's clock (`/admin/clock`), moved by `advance` (an ISO-8601 duration) first if given."""
    body = None if advance is None else json.dumps({"advance": advance}).encode()
    request = urllib.request.Request(
        f"{sidecar.url}/admin/clock", data=body, method="POST" if body else "GET"
    )
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=30) as response:
        return dict(json.loads(response.read()))


def test_a_scheduled_start_waits_for_its_time(client: dt_client.TaskHubGrpcClient, sidecar: Sidecar) -> None:
    now = sidecar.local.clock.now()
    start_at = now + timedelta(hours=2)
    iid = client.schedule_new_orchestration(greet, input="later", instance_id=new_id(), start_at=start_at)
    state = client.get_orchestration_state(iid)
    assert state is not None and state.runtime_status == Status.PENDING
    assert stays(lambda: client.get_orchestration_state(iid).runtime_status == Status.PENDING)
    client.raise_orchestration_event(iid, "early", data=1)  # waits in the inbox with the start
    clock(sidecar, advance="PT1H")
    assert client.get_orchestration_state(iid).runtime_status == Status.PENDING
    clock(sidecar, advance="PT1H")
    done = client.wait_for_orchestration_completion(iid, timeout=30)
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    output = json.loads(done.serialized_output)
    assert output["hello"] == "later" and output["at"] >= start_at.replace(tzinfo=None).isoformat()


def test_scheduled_signals_wait_for_their_time(client: dt_client.TaskHubGrpcClient, sidecar: Sidecar) -> None:
    key = uuid.uuid4().hex
    entity = entities.EntityInstanceId("counter", key)
    now = sidecar.local.clock.now()
    client.signal_entity(entity, "add", 2, signal_time=now + timedelta(minutes=30))
    iid = client.schedule_new_orchestration(later, input=key, instance_id=new_id())
    done = client.wait_for_orchestration_completion(iid, timeout=30)  # not held by its signal
    assert done is not None and done.runtime_status == Status.COMPLETED, done
    client.signal_entity(entity, "add", 1)  # not scheduled: applied now
    wait_for(lambda: state_of(client, entity) == 1)
    clock(sidecar, advance="PT30M")
    wait_for(lambda: state_of(client, entity) == 3)
    clock(sidecar, advance="PT30M")
    wait_for(lambda: state_of(client, entity) == 8)


def test_schedules_survive_a_sidecar_kill(sidecar_process: SidecarProcess) -> None:
    """A scheduled start and a scheduled signal due while no sidecar runs happen at its next start."""
    key = uuid.uuid4().hex
    entity = entities.EntityInstanceId("counter", key)
    with running_worker(sidecar_process.address, [greet], [], [counter]):
        client = new_client(sidecar_process.address)
        due = datetime.now(UTC) + timedelta(seconds=2)
        iid = client.schedule_new_orchestration(greet, input="again", instance_id=new_id(), start_at=due)
        client.signal_entity(entity, "add", 4, signal_time=due)
        client.close()
        assert sidecar_process.process is not None
        kill(sidecar_process.process)
        wait_for(lambda: datetime.now(UTC) > due)  # both come due while no sidecar runs
        sidecar_process.start()
        wait_for(lambda: sidecar_process.finished(iid), 60)
        assert sidecar_process.instance(iid)["output"]["hello"] == "again"
        wait_for(lambda: sidecar_process.api("GET", f"/entities/counter/{key}") == 4)
