"""An in-memory stand-in for the Durable instance HTTP API (and the few app routes the TUI reads).

The CLI, TUI and plugin tests use it instead of the orchestration engine, so they test the front ends
against the contract (/work/contract-instance-api.md shapes) and not against the engine's behaviour.
Serve it with `httpx.MockTransport(fake.handle)` (clients built in the test) or `fake.mock()` (respx,
for code that builds its own client, such as the CLI).

Orchestrators are small scripted behaviours keyed by name:
- `approval`: sets custom status "waiting for approval", completes with the `Approval` event's data;
- `echo`: runs an activity and completes with its input after `echo_polls` status reads;
- `boom`: fails at once with "ValueError: boom".
Times come from a fake clock (a second per step from 2026-01-01T10:00:00Z) so snapshots are stable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote

import httpx
import respx

PREFIX = "/runtime/webhooks/durabletask/"
START = datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)


def iso(stamp: datetime) -> str:
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


class FakeDurableApi:
    """Instances in a dict; every request is recorded in `requests`."""

    def __init__(self, agents: list[str] | None = None, page_size: int = 0, echo_polls: int = 2) -> None:
        self.instances: dict[str, dict[str, Any]] = {}
        self.history: dict[str, list[dict[str, Any]]] = {}
        self.polls: dict[str, int] = {}
        self.requests: list[httpx.Request] = []
        self.agents = agents or ["WeatherAgent"]
        self.sessions: dict[tuple[str, str], dict[str, Any]] = {}
        self.page_size = page_size
        self.echo_polls = echo_polls
        self.clock = START
        self.counter = 0

    # ---- building state ---------------------------------------------------------------------

    def tick(self) -> str:
        self.clock += timedelta(seconds=1)
        return iso(self.clock)

    def add(self, instance_id: str, name: str, status: str = "Running", **fields: Any) -> dict[str, Any]:
        """Put an instance in the store as is (history from `fields.pop('history')`)."""
        history = fields.pop("history", [])
        now = self.tick()
        item = {
            "name": name,
            "instanceId": instance_id,
            "runtimeStatus": status,
            "input": None,
            "customStatus": None,
            "output": None,
            "createdTime": now,
            "lastUpdatedTime": now,
        }
        item.update(fields)
        self.instances[instance_id] = item
        self.history[instance_id] = list(history)
        return item

    def event(self, instance_id: str, event_type: str, **fields: Any) -> None:
        self.history[instance_id].append({"EventType": event_type, "Timestamp": self.tick(), **fields})
        self.instances[instance_id]["lastUpdatedTime"] = iso(self.clock)

    def finish(self, instance_id: str, status: str, output: Any) -> None:
        item = self.instances[instance_id]
        item["runtimeStatus"], item["output"] = status, output
        self.event(instance_id, "ExecutionCompleted", OrchestrationStatus=status, Result=output)

    # ---- HTTP ---------------------------------------------------------------------------------

    def handle(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        path = request.url.raw_path.decode().split("?")[0]
        if path == "/api/health":
            return httpx.Response(
                200, json={"status": "healthy", "agents": [{"name": a} for a in self.agents]}
            )
        if path.startswith("/api/agents/"):
            _, _, _, agent, session = path.split("/", 4)
            state = self.sessions.get((unquote(agent).lower(), unquote(session)))
            return httpx.Response(200, json=state) if state else httpx.Response(404, json={"error": "nf"})
        if not path.startswith(PREFIX):
            return httpx.Response(404, json={"error": f"no route {path}"})
        parts = [unquote(p) for p in path[len(PREFIX) :].split("/") if p]
        if parts[:1] == ["entities"]:
            return httpx.Response(200, json=[])
        if parts[:1] == ["orchestrators"] and request.method == "POST":
            return self._start(request, parts[1], parts[2] if len(parts) > 2 else None)
        if parts == ["instances"] and request.method == "GET":
            return self._list(request)
        if parts[:1] == ["instances"] and len(parts) >= 2:
            instance_id = parts[1]
            if instance_id not in self.instances:
                return httpx.Response(404, json={"error": f"instance {instance_id} not found"})
            if len(parts) == 2 and request.method == "GET":
                return self._status(request, instance_id)
            if len(parts) == 2 and request.method == "DELETE":
                del self.instances[instance_id]
                return httpx.Response(200, json={"instancesDeleted": 1})
            if len(parts) == 4 and parts[2] == "raiseEvent" and request.method == "POST":
                return self._raise(request, instance_id, parts[3])
            if len(parts) == 3 and parts[2] == "terminate" and request.method == "POST":
                return self._terminate(request, instance_id)
        return httpx.Response(404, json={"error": f"no route {request.method} {path}"})

    @contextmanager
    def mock(self, base_url: str = "http://fake-app") -> Iterator[str]:
        """Route every httpx request to `base_url` here (for code that builds its own client)."""
        with respx.mock(base_url=base_url, assert_all_called=False) as router:
            router.route().mock(side_effect=self.handle)
            yield base_url

    def _start(self, request: httpx.Request, name: str, instance_id: str | None) -> httpx.Response:
        if name not in ("approval", "echo", "boom"):
            return httpx.Response(404, json={"error": f"The function '{name}' doesn't exist."})
        if instance_id is None:
            self.counter += 1
            instance_id = f"inst{self.counter:04d}"
        existing = self.instances.get(instance_id)
        if existing and existing["runtimeStatus"] not in ("Completed", "Failed", "Terminated"):
            return httpx.Response(409, json={"error": f"An instance with ID '{instance_id}' already exists."})
        try:
            data = json.loads(request.content) if request.content else None
        except ValueError:
            return httpx.Response(400, json={"error": "bad JSON"})
        self.add(instance_id, name, "Running", input=data)
        self.polls[instance_id] = 0
        self.event(instance_id, "ExecutionStarted", FunctionName=name, Input=data)
        if name == "approval":
            self.instances[instance_id]["customStatus"] = "waiting for approval"
        elif name == "boom":
            self.event(
                instance_id,
                "TaskFailed",
                FunctionName="explode",
                Reason="ValueError: boom",
                ScheduledTime=iso(self.clock),
            )
            self.finish(instance_id, "Failed", "ValueError: boom")
        base = str(request.url.copy_with(raw_path=f"{PREFIX}instances/{instance_id}".encode()))
        body = {
            "id": instance_id,
            "statusQueryGetUri": base,
            "sendEventPostUri": f"{base}/raiseEvent/{{eventName}}",
        }
        return httpx.Response(202, json=body, headers={"Location": base})

    def _status(self, request: httpx.Request, instance_id: str) -> httpx.Response:
        item = self.instances[instance_id]
        self.polls[instance_id] = self.polls.get(instance_id, 0) + 1
        if (
            item["name"] == "echo"
            and item["runtimeStatus"] == "Running"
            and self.polls[instance_id] >= self.echo_polls
        ):
            scheduled = iso(self.clock)
            self.event(
                instance_id,
                "TaskCompleted",
                FunctionName="say",
                Result=item["input"],
                ScheduledTime=scheduled,
            )
            self.finish(instance_id, "Completed", item["input"])
        body = dict(item)
        if request.url.params.get("showHistory") == "true":
            body["historyEvents"] = list(self.history[instance_id])
        code = 200 if item["runtimeStatus"] in ("Completed", "Failed", "Terminated") else 202
        return httpx.Response(code, json=body)

    def _list(self, request: httpx.Request) -> httpx.Response:
        wanted = request.url.params.get("runtimeStatus")
        items = list(self.instances.values())
        if wanted:
            items = [i for i in items if i["runtimeStatus"] in wanted.split(",")]
        if not self.page_size:
            return httpx.Response(200, json=items)
        start = int(request.headers.get("x-ms-continuation-token") or 0)
        page = items[start : start + self.page_size]
        more = start + self.page_size < len(items)
        headers = {"x-ms-continuation-token": str(start + self.page_size)} if more else {}
        return httpx.Response(200, json=page, headers=headers)

    def _raise(self, request: httpx.Request, instance_id: str, event: str) -> httpx.Response:
        item = self.instances[instance_id]
        if item["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            return httpx.Response(410, json={"error": "instance finished"})
        try:
            data = json.loads(request.content) if request.content else None
        except ValueError:
            return httpx.Response(400, json={"error": "bad JSON"})
        self.event(instance_id, "EventRaised", Name=event, Input=data)
        if item["name"] == "approval" and event == "Approval":
            item["customStatus"] = None
            self.finish(
                instance_id, "Completed", {"approved": (data or {}).get("approved"), "input": item["input"]}
            )
        return httpx.Response(202)

    def _terminate(self, request: httpx.Request, instance_id: str) -> httpx.Response:
        item = self.instances[instance_id]
        if item["runtimeStatus"] in ("Completed", "Failed", "Terminated"):
            return httpx.Response(410, json={"error": "instance finished"})
        self.finish(instance_id, "Terminated", request.url.params.get("reason") or "")
        return httpx.Response(202)
