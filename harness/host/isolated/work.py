"""The engine's episodes, activities and entity batches, run by the app in its own interpreter over
the Durable Task protocol (azure-functions-durable 2.x).

A 2.x app's orchestration trigger takes a base64 protobuf `OrchestratorRequest` and returns a base64
`OrchestratorResponse`; its entity trigger likewise with `EntityBatchRequest` / `EntityBatchResult`;
an activity takes and returns JSON. That is what a `durabletask` worker gets from a sidecar, so this
is the sidecar's `WorkItems` (the same conversion of the host's history to protobuf and of the answer
back to the engine's decision) with the queue for connected workers replaced by a direct call into
the app's process: the Functions host's own way of driving a 2.x app.

A call lost because the app's process exited is made again once a new process is up (an episode or
a batch is recomputed from what storage holds, nothing of it having been committed; an activity runs
again, at least once as everywhere in Durable Functions), at most `ATTEMPTS` times in a row: an app
that kills its process on every call fails the activity, or leaves the episode to the next wake-up,
instead of restarting forever.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

from durabletask.internal import orchestrator_service_pb2 as pb

from ..entities.dispatcher import split_instance_id
from ..loader import AppIndex
from ..sidecar.workitems import WorkItems
from ..workers import FunctionTimeoutError, within
from .process import AppFunctionError, AppProcess, AppProcessExited

log = logging.getLogger(__name__)

ATTEMPTS = 3  # calls lost to the app's process exiting, in a row, before the work is given up


class AppWorkItems(WorkItems):
    """`WorkItems` whose items are run by the app's process as soon as they are made."""

    def __init__(self, process: AppProcess, index: AppIndex, timeout: float | None) -> None:
        super().__init__()
        self.process = process
        self.index = index
        self.timeout = timeout  # host.json's functionTimeout: activities, episodes and entity batches

    def orchestrator_name(self, name: str) -> str | None:
        """The app's orchestrator of that name (case-insensitive), None when it has none."""
        function = self.index.orchestrators.get(name.lower())
        return function.name if function is not None else None

    def withdraw(self, iid: str) -> bool:
        """An episode is never waiting for a worker here: it runs as soon as it is made."""
        return False

    async def _run(self, item: pb.WorkItem, kind: str, iid: str | None = None) -> Any:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                if kind == "orchestrator":
                    return await self._episode(item.orchestratorRequest)
                if kind == "activity":
                    return await self._activity(item.activityRequest)
                return await self._entities(item.entityRequest)
            except AppProcessExited as exc:
                if attempt == ATTEMPTS:
                    if kind == "activity":
                        return _failed("AppProcessExited", f"{exc} on each of {ATTEMPTS} attempts")
                    raise RuntimeError(f"{exc} on each of {ATTEMPTS} attempts") from exc
                log.warning("%s work lost (%s); running it again in a new app process", kind, exc)
                await asyncio.sleep(0.2 * attempt)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _episode(self, request: pb.OrchestratorRequest) -> pb.OrchestratorResponse:
        started = [e for e in [*request.pastEvents, *request.newEvents] if e.HasField("executionStarted")]
        name = started[-1].executionStarted.name if started else ""
        function = self.index.orchestrators.get(name.lower())
        if function is None:  # the engine checks first; an app changed under a running host
            raise RuntimeError(f"orchestrator function '{name}' is not defined by this app")
        try:
            answer = await within(
                self.timeout, self._call(function.function_name, request), function.function_name
            )
        except FunctionTimeoutError as exc:  # orchestrator code must not block: it fails its instance
            failed = pb.CompleteOrchestrationAction(
                orchestrationStatus=pb.ORCHESTRATION_STATUS_FAILED,
                failureDetails=pb.TaskFailureDetails(
                    errorType="FunctionTimeoutException", errorMessage=str(exc)
                ),
            )
            return pb.OrchestratorResponse(
                instanceId=request.instanceId, actions=[pb.OrchestratorAction(completeOrchestration=failed)]
            )
        response = pb.OrchestratorResponse()
        response.ParseFromString(base64.b64decode(answer))
        return response

    async def _entities(self, request: pb.EntityBatchRequest) -> pb.EntityBatchResult:
        name, _ = split_instance_id(request.instanceId)
        entity = self.index.entities.get(name.lower())
        if entity is None:
            raise RuntimeError(f"no entity function named {name!r}")
        # A batch over functionTimeout raises here: the dispatcher isolates and drops the operation
        # that hangs, as for an entity in the host's process.
        answer = await within(self.timeout, self._call(entity.function_name, request), entity.function_name)
        result = pb.EntityBatchResult()
        result.ParseFromString(base64.b64decode(answer))
        return result

    async def _call(self, function: str, request: Any) -> str:
        """A protobuf request to an orchestration or entity trigger; its base64 answer."""
        trigger = self._trigger_param(function)
        datum = {"type": "string", "value": base64.b64encode(request.SerializeToString()).decode("ascii")}
        try:
            answer = await self.process.call(function, {trigger: {"datum": datum}})
        except AppFunctionError as exc:  # the SDK's handler itself failed (its user code cannot)
            raise RuntimeError(f"{function}: {exc}") from exc
        if not isinstance(answer, dict) or not isinstance(answer.get("datum", {}).get("value"), str):
            raise RuntimeError(
                f"{function} did not answer with the Durable Task protocol: is the app on "
                "azure-functions-durable 2.x?"
            )
        return str(answer["datum"]["value"])

    async def _activity(self, request: pb.ActivityRequest) -> pb.ActivityResponse:
        activity = self.index.activities.get(request.name.lower())
        if activity is None:
            return _failed(
                "ActivityNotFound", f"activity function '{request.name}' is not defined by this app"
            )
        value = request.input.value if request.HasField("input") else "null"
        args = {activity.param: {"datum": {"type": "json", "value": value}}}
        try:
            answer = await within(
                self.timeout, self.process.call(activity.function_name, args), activity.function_name
            )
        except AppFunctionError as exc:
            return _failed(exc.type, exc.message, exc.stack)
        except FunctionTimeoutError as exc:
            return _failed("FunctionTimeoutException", str(exc))
        response = pb.ActivityResponse(
            instanceId=request.orchestrationInstance.instanceId, taskId=request.taskId
        )
        result = (answer or {}).get("datum", {}).get("value") if isinstance(answer, dict) else None
        if result is not None:
            response.result.value = result
        return response

    def _trigger_param(self, function: str) -> str:
        for described in self.process.description.get("functions", []):
            if described["name"] == function:
                return str(described["trigger"]["name"])
        raise RuntimeError(f"function {function} is not in the app's description")


def _failed(error_type: str, message: str, stack: str = "") -> pb.ActivityResponse:
    details = pb.TaskFailureDetails(errorType=error_type, errorMessage=message)
    if stack:
        details.stackTrace.value = stack
    return pb.ActivityResponse(failureDetails=details)
