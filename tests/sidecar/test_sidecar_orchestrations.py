"""Orchestrations through the sidecar, driven by Microsoft's own durabletask worker and client: the
gRPC protocol on the local host's engine, over Azurite."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import aiohttp
import grpc
import pytest
from durabletask import client as dt_client
from durabletask import task
from durabletask import worker as dt_worker

from harness.host.sidecar.server import Sidecar

from .conftest import new_client, new_id, running_worker

Status = dt_client.OrchestrationStatus


def hello(ctx: task.ActivityContext, name: str) -> str:
    return f"Hello {name}!"


def explode(ctx: task.ActivityContext, message: str) -> None:
    raise ValueError(message)


def sequence(ctx: task.OrchestrationContext, cities: list[str]) -> Any:
    results = []
    for city in cities:
        results.append((yield ctx.call_activity(hello, input=city)))
    return results


def fan_out(ctx: task.OrchestrationContext, count: int) -> Any:
    results = yield task.when_all([ctx.call_activity(hello, input=str(i)) for i in range(count)])
    return results


def sleeper(ctx: task.OrchestrationContext, seconds: float) -> Any:
    started = ctx.current_utc_datetime
    yield ctx.create_timer(timedelta(seconds=seconds))
    return (ctx.current_utc_datetime - started).total_seconds()


def approval(ctx: task.OrchestrationContext, _: Any) -> Any:
    ctx.set_custom_status("waiting")
    answer = yield ctx.wait_for_external_event("approve")
    return {"approved": answer}


def parent(ctx: task.OrchestrationContext, name: str) -> Any:
    child_result = yield ctx.call_sub_orchestrator(sequence, input=[name, name + "2"])
    return {"child": child_result}


def counter(ctx: task.OrchestrationContext, n: int) -> Any:
    if n < 3:
        yield ctx.call_activity(hello, input=str(n))
        ctx.continue_as_new(n + 1)
        return None
    return n


def failing(ctx: task.OrchestrationContext, message: str) -> Any:
    yield ctx.call_activity(explode, input=message)
    return "never"


def catching(ctx: task.OrchestrationContext, message: str) -> Any:
    try:
        yield ctx.call_activity(explode, input=message)
    except task.TaskFailedError as exc:
        return {"caught": exc.details.message, "type": exc.details.error_type}
    return "never"


ATTEMPTS: dict[str, int] = {}


def flaky(ctx: task.ActivityContext, key: str) -> str:
    ATTEMPTS[key] = ATTEMPTS.get(key, 0) + 1
    if ATTEMPTS[key] < 3:
        raise RuntimeError(f"attempt {ATTEMPTS[key]} failed")
    return f"worked on attempt {ATTEMPTS[key]}"


def retrying(ctx: task.OrchestrationContext, key: str) -> Any:
    policy = task.RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3)
    return (yield ctx.call_activity(flaky, input=key, retry_policy=policy))


def flaky_child(ctx: task.OrchestrationContext, key: str) -> Any:
    return (yield ctx.call_activity(flaky, input=key))


def retrying_parent(ctx: task.OrchestrationContext, key: str) -> Any:
    policy = task.RetryPolicy(first_retry_interval=timedelta(milliseconds=100), max_number_of_attempts=3)
    return (yield ctx.call_sub_orchestrator(flaky_child, input=key, retry_policy=policy))


def collector(ctx: task.OrchestrationContext, seen: list[str]) -> Any:
    """Takes one event per execution; the ones that came early are carried over to the next."""
    seen = [*seen, (yield ctx.wait_for_external_event("item"))]
    if len(seen) < 3:
        ctx.continue_as_new(seen, save_events=True)
        return None
    return seen


ORCHESTRATORS = [
    collector,
    sequence,
    fan_out,
    sleeper,
    approval,
    parent,
    counter,
    failing,
    catching,
    retrying,
    flaky_child,
    retrying_parent,
]
ACTIVITIES = [hello, explode, flaky]


@pytest.fixture(scope="module")
def client(sidecar: Sidecar) -> Iterator[dt_client.TaskHubGrpcClient]:
    with running_worker(sidecar.address, ORCHESTRATORS, ACTIVITIES):
        connected = new_client(sidecar.address)
        yield connected
        connected.close()


def run(client: dt_client.TaskHubGrpcClient, orchestrator: Any, value: Any, timeout: float = 30) -> Any:
    iid = client.schedule_new_orchestration(orchestrator, input=value, instance_id=new_id())
    state = client.wait_for_orchestration_completion(iid, timeout=timeout)
    assert state is not None
    return state


def test_activities_in_sequence(client: dt_client.TaskHubGrpcClient) -> None:
    state = run(client, sequence, ["Tokyo", "Seattle"])
    assert state.runtime_status == Status.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == ["Hello Tokyo!", "Hello Seattle!"]
    assert json.loads(state.serialized_input) == ["Tokyo", "Seattle"]


def test_fan_out(client: dt_client.TaskHubGrpcClient) -> None:
    state = run(client, fan_out, 20)
    assert state.runtime_status == Status.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == [f"Hello {i}!" for i in range(20)]


def test_timer(client: dt_client.TaskHubGrpcClient) -> None:
    state = run(client, sleeper, 1.0)
    assert state.runtime_status == Status.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) >= 1.0  # the episode after the timer sees the later time


def test_external_event_and_custom_status(client: dt_client.TaskHubGrpcClient) -> None:
    iid = client.schedule_new_orchestration(approval, instance_id=new_id())
    client.wait_for_orchestration_start(iid, timeout=30)
    state = client.get_orchestration_state(iid)
    assert state is not None and state.runtime_status in (Status.RUNNING, Status.PENDING)
    client.raise_orchestration_event(iid, "approve", data="yes")
    state = client.wait_for_orchestration_completion(iid, timeout=30)
    assert state is not None and state.runtime_status == Status.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == {"approved": "yes"}
    assert json.loads(state.serialized_custom_status) == "waiting"


def test_event_before_the_wait_is_kept(client: dt_client.TaskHubGrpcClient) -> None:
    """An event raised before the orchestrator waits for it is buffered by the worker, not lost."""
    iid = new_id()
    client.schedule_new_orchestration(approval, instance_id=iid)
    client.raise_orchestration_event(iid, "approve", data="early")
    state = client.wait_for_orchestration_completion(iid, timeout=30)
    assert state is not None and json.loads(state.serialized_output) == {"approved": "early"}


def test_sub_orchestration(client: dt_client.TaskHubGrpcClient) -> None:
    state = run(client, parent, "Oslo")
    assert state.runtime_status == Status.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == {"child": ["Hello Oslo!", "Hello Oslo2!"]}


def test_continue_as_new(client: dt_client.TaskHubGrpcClient) -> None:
    state = run(client, counter, 0)
    assert state.runtime_status == Status.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == 3


def test_continue_as_new_carries_events_over(client: dt_client.TaskHubGrpcClient) -> None:
    iid = client.schedule_new_orchestration(collector, input=[], instance_id=new_id())
    for n in range(3):  # all at once: the first execution takes one, the rest are carried over
        client.raise_orchestration_event(iid, "item", data=f"e{n}")
    state = client.wait_for_orchestration_completion(iid, timeout=30)
    assert state is not None and state.runtime_status == Status.COMPLETED, state.failure_details
    # Each event once. (In order only when all three reached the first episode: one that came while
    # it ran waits in the inbox ahead of the carried ones, see docs/sidecar.md.)
    assert sorted(json.loads(state.serialized_output)) == ["e0", "e1", "e2"]


def test_activity_failure_fails_the_orchestration(client: dt_client.TaskHubGrpcClient) -> None:
    state = run(client, failing, "boom")
    assert state.runtime_status == Status.FAILED
    assert state.failure_details is not None and "boom" in state.failure_details.message


def test_activity_failure_can_be_caught(client: dt_client.TaskHubGrpcClient) -> None:
    state = run(client, catching, "bang")
    assert state.runtime_status == Status.COMPLETED, state.failure_details
    output = json.loads(state.serialized_output)
    assert output["caught"] == "bang" and output["type"].endswith("ValueError")


@pytest.mark.parametrize("orchestrator", [retrying, retrying_parent])
def test_retry_policy(client: dt_client.TaskHubGrpcClient, orchestrator: Any) -> None:
    """A durabletask retry schedules the failed activity or child again under the same task id."""
    state = run(client, orchestrator, new_id("retry"))
    assert state.runtime_status == Status.COMPLETED, state.failure_details
    assert json.loads(state.serialized_output) == "worked on attempt 3"


def test_unknown_orchestrator_fails(client: dt_client.TaskHubGrpcClient) -> None:
    state = run(client, "no_such_orchestrator", None)
    assert state.runtime_status == Status.FAILED
    assert state.failure_details is not None and "no_such_orchestrator" in state.failure_details.message


def test_terminate(client: dt_client.TaskHubGrpcClient) -> None:
    iid = client.schedule_new_orchestration(approval, instance_id=new_id())
    client.wait_for_orchestration_start(iid, timeout=30)
    client.terminate_orchestration(iid, output="stopped")
    state = client.wait_for_orchestration_completion(iid, timeout=30)
    assert state is not None and state.runtime_status == Status.TERMINATED
    assert json.loads(state.serialized_output) == "stopped"


def test_suspend_and_resume(client: dt_client.TaskHubGrpcClient) -> None:
    iid = client.schedule_new_orchestration(approval, instance_id=new_id())
    client.wait_for_orchestration_start(iid, timeout=30)
    client.suspend_orchestration(iid)
    client.raise_orchestration_event(iid, "approve", data="while suspended")
    with pytest.raises(TimeoutError):
        client.wait_for_orchestration_completion(iid, timeout=1)
    state = client.get_orchestration_state(iid)
    assert state is not None and state.runtime_status == Status.SUSPENDED
    client.resume_orchestration(iid)
    state = client.wait_for_orchestration_completion(iid, timeout=30)
    assert state is not None and json.loads(state.serialized_output) == {"approved": "while suspended"}


def test_purge_and_query(client: dt_client.TaskHubGrpcClient) -> None:
    prefix = new_id("q")
    ids = [
        client.schedule_new_orchestration(sequence, input=["x"], instance_id=f"{prefix}-{n}")
        for n in range(3)
    ]
    for iid in ids:
        client.wait_for_orchestration_completion(iid, timeout=30)
    found = client.get_all_orchestration_states(dt_client.OrchestrationQuery(instance_id_prefix=prefix))
    assert sorted(s.instance_id for s in found) == ids
    assert all(s.runtime_status == Status.COMPLETED for s in found)
    assert client.purge_orchestration(ids[0]).deleted_instance_count == 1
    assert client.get_orchestration_state(ids[0]) is None
    assert client.purge_orchestration(ids[0]).deleted_instance_count == 0


def test_start_over_a_running_instance_is_refused(client: dt_client.TaskHubGrpcClient) -> None:
    iid = client.schedule_new_orchestration(approval, instance_id=new_id())
    with pytest.raises(grpc.RpcError) as raised:
        client.schedule_new_orchestration(approval, instance_id=iid)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS
    client.terminate_orchestration(iid)


def test_bad_input_is_named(client: dt_client.TaskHubGrpcClient) -> None:
    with pytest.raises(grpc.RpcError) as raised:
        client.schedule_new_orchestration(sequence, input=[], instance_id="a/b")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "'/'" in str(raised.value.details())
    with pytest.raises(grpc.RpcError) as raised:
        client.raise_orchestration_event(new_id(), "x")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_task_hubs_from_the_metadata_are_apart(sidecar: Sidecar) -> None:
    """A call naming another task hub (`taskhub` metadata) gets that hub, started on first use, with
    its own instances and workers; a hub name storage cannot take is refused with the rule."""
    other = dt_client.TaskHubGrpcClient(host_address=sidecar.address, metadata=[("taskhub", "elsewhere")])
    worker = dt_worker.TaskHubGrpcWorker(host_address=sidecar.address, metadata=[("taskhub", "elsewhere")])
    worker.add_orchestrator(sequence)
    worker.add_activity(hello)
    worker.start()
    try:
        iid = other.schedule_new_orchestration(sequence, input=["Bern"], instance_id=new_id())
        state = other.wait_for_orchestration_completion(iid, timeout=30)
        assert state is not None and json.loads(state.serialized_output) == ["Hello Bern!"]
    finally:
        worker.stop()
    default = new_client(sidecar.address)
    assert default.get_orchestration_state(iid) is None  # not in the default hub
    bad = dt_client.TaskHubGrpcClient(host_address=sidecar.address, metadata=[("taskhub", "no-dashes")])
    with pytest.raises(grpc.RpcError) as raised:
        bad.get_orchestration_state("x")
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "letters and digits" in str(raised.value.details())
    for client in (other, default, bad):
        client.close()


async def test_http_api_shows_the_same_instances(
    client: dt_client.TaskHubGrpcClient, sidecar: Sidecar
) -> None:
    state = run(client, sequence, ["Lima"])
    async with aiohttp.ClientSession() as http:
        url = f"{sidecar.url}/runtime/webhooks/durabletask/instances/{state.instance_id}?showHistory=true"
        async with http.get(url) as response:
            body = await response.json()
    assert response.status == 200, body
    assert body["runtimeStatus"] == "Completed" and body["output"] == ["Hello Lima!"]
    kinds = [event["EventType"] for event in body["historyEvents"]]
    assert kinds == ["ExecutionStarted", "TaskCompleted", "ExecutionCompleted"]


def test_restart_and_history(client: dt_client.TaskHubGrpcClient) -> None:
    state = run(client, sequence, ["Rome"])
    again = client.restart_orchestration(state.instance_id)
    assert again == state.instance_id
    restarted = client.wait_for_orchestration_completion(again, timeout=30)
    assert restarted is not None and json.loads(restarted.serialized_output) == ["Hello Rome!"]
    fresh = client.restart_orchestration(state.instance_id, restart_with_new_instance_id=True)
    assert fresh != state.instance_id
    assert client.wait_for_orchestration_completion(fresh, timeout=30) is not None
    events = client.get_orchestration_history(state.instance_id)
    kinds = [type(event).__name__ for event in events]
    assert kinds[:2] == ["OrchestratorStartedEvent", "ExecutionStartedEvent"]  # DTFx episode layout
    assert kinds[-1] == "ExecutionCompletedEvent"
    assert "TaskScheduledEvent" in kinds and "TaskCompletedEvent" in kinds


def test_rewind_is_refused_with_a_reason(client: dt_client.TaskHubGrpcClient) -> None:
    """Only a Failed instance is rewound (test_sidecar_management rewinds one)."""
    state = run(client, sequence, ["x"])
    with pytest.raises(grpc.RpcError) as raised:
        client.rewind_orchestration(state.instance_id)
    assert raised.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "only a Failed one" in str(raised.value.details())
    with pytest.raises(grpc.RpcError) as raised:
        client.rewind_orchestration(new_id())
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


def test_durable_task_scheduler_classes_connect_as_to_the_emulator(sidecar: Sidecar) -> None:
    """Microsoft's Durable Task Scheduler worker and client, set up as for its local emulator (insecure,
    no credential, the task hub named in the `taskhub` metadata), work unchanged against the sidecar."""
    from durabletask.azuremanaged.client import DurableTaskSchedulerClient
    from durabletask.azuremanaged.worker import DurableTaskSchedulerWorker

    options = {"host_address": sidecar.address, "taskhub": sidecar.hub, "token_credential": None}
    worker = DurableTaskSchedulerWorker(**options, secure_channel=False)
    worker.add_orchestrator(sequence)
    worker.add_activity(hello)
    worker.start()
    try:
        scheduler = DurableTaskSchedulerClient(**options, secure_channel=False)
        iid = scheduler.schedule_new_orchestration(sequence, input=["Kyiv"], instance_id=new_id())
        state = scheduler.wait_for_orchestration_completion(iid, timeout=30)
        assert state is not None and json.loads(state.serialized_output) == ["Hello Kyiv!"]
        elsewhere = DurableTaskSchedulerClient(**{**options, "taskhub": "otherhub"}, secure_channel=False)
        assert elsewhere.get_orchestration_state(iid) is None  # another hub
    finally:
        worker.stop()
