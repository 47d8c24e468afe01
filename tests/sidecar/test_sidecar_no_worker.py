"""Work accepted while no worker is connected: it waits for one, and a terminate or suspend does not
wait behind it."""

from __future__ import annotations

import json
from typing import Any

from durabletask import client as dt_client
from durabletask import task

from harness.host.sidecar.server import Sidecar

from .conftest import new_client, new_id, running_worker, wait_for

Status = dt_client.OrchestrationStatus


def shout(ctx: task.ActivityContext, text: str) -> str:
    return text.upper()


def loud(ctx: task.OrchestrationContext, text: str) -> Any:
    return (yield ctx.call_activity(shout, input=text))


def status_of(client: dt_client.TaskHubGrpcClient, iid: str) -> Any:
    state = client.get_orchestration_state(iid)
    return None if state is None else state.runtime_status


def test_terminate_and_suspend_do_not_wait_for_a_worker(sidecar: Sidecar) -> None:
    client = new_client(sidecar.address)
    doomed = client.schedule_new_orchestration(loud, input="x", instance_id=new_id())
    client.terminate_orchestration(doomed, output="no worker came")
    state = client.wait_for_orchestration_completion(doomed, timeout=10)
    assert state is not None and state.runtime_status == Status.TERMINATED
    paused = client.schedule_new_orchestration(loud, input="later", instance_id=new_id())
    client.suspend_orchestration(paused)
    waiting = client.schedule_new_orchestration(loud, input="hello", instance_id=new_id())
    with running_worker(sidecar.address, [loud], [shout]):  # work waits for the first worker to come
        state = client.wait_for_orchestration_completion(waiting, timeout=30)
        assert state is not None and json.loads(state.serialized_output) == "HELLO"
        wait_for(lambda: status_of(client, paused) == Status.SUSPENDED)  # applied as a message
        client.resume_orchestration(paused)
        state = client.wait_for_orchestration_completion(paused, timeout=30)
        assert state is not None and json.loads(state.serialized_output) == "LATER"
    client.close()
