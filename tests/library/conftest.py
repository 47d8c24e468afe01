"""Drive a real AgentFunctionApp's registered functions the way a Functions host would.

`DurableClientDouble` stands in for the durable client binding only: it speaks the real
entity JSON protocol to the registered entity functions (double-encoded inputs, JSON state
text, batch results), applies signals after `signal_entity` returns, one at a time per
entity, as the Durable runtime does.
"""

from __future__ import annotations

import asyncio
import json
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from typing import Any

import azure.durable_functions as df
import azure.functions as func
import pytest
from agent_framework import Agent
from azure.durable_functions.models.EntityStateResponse import EntityStateResponse

from durableagent import AgentFunctionApp
from fakes import ScriptedChatClient


def get_weather(location: str) -> str:
    """Get the weather for a location."""
    return f"Sunny, 22 C in {location}"


class DurableClientDouble:
    def __init__(self, app: AgentFunctionApp) -> None:
        self.functions = {f.get_function_name(): f for f in app.get_functions()}
        self.entities = {}
        for f in self.functions.values():
            trigger = f.get_trigger()
            if trigger.type == "entityTrigger":
                self.entities[(trigger.entity_name or f.get_function_name()).lower()] = f.get_user_function()
        self.states: dict[tuple[str, str], str | None] = {}
        self.locks: dict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self.results: list[dict[str, Any]] = []
        self.pending: set[asyncio.Task[None]] = set()
        self.fail_with: Exception | None = None
        self.read_fail_with: Exception | None = None
        self.hang_signals = False
        self.hang_reads = False
        self.signals: list[tuple[str, str, str, Any]] = []
        self.last_response: func.HttpResponse | None = None
        self.reads = 0
        self.clock = 0
        self.last_operation: dict[tuple[str, str], str] = {}

    def run_batch(self, name: str, key: str, operations: list[tuple[str, Any]]) -> dict[str, Any]:
        """One entity invocation with the host's JSON context; returns the parsed response."""
        ident = (name.lower(), key)
        state = self.states.get(ident)
        context = {
            "self": {"name": name.lower(), "key": key},
            "exists": state is not None,
            "state": state,
            "batch": [
                {"name": op, "input": None if arg is None else json.dumps(json.dumps(arg)), "isSignal": True}
                for op, arg in operations
            ],
        }
        output = json.loads(self.entities[name.lower()](json.dumps(context)))
        self.clock += 1
        if output["entityExists"]:
            self.states[ident] = output["entityState"]
            # Later operations get later times (the clock may not tick between two of them).
            stamp = datetime.now(UTC) + timedelta(microseconds=self.clock)
            self.last_operation[ident] = stamp.isoformat().replace("+00:00", "Z")
        else:
            self.states.pop(ident, None)
            self.last_operation.pop(ident, None)
        self.results.extend(output["results"])
        return output

    async def _apply(self, name: str, key: str, op: str, arg: Any) -> None:
        async with self.locks[(name.lower(), key)]:
            output = await asyncio.to_thread(self.run_batch, name, key, [(op, arg)])
        for sent in output.get("signals") or []:  # an entity's signals to others, sent after its commit
            target = sent["target"]
            self._schedule(target["name"], target["key"], sent["name"], json.loads(json.loads(sent["input"])))

    def _schedule(self, name: str, key: str, op: str, arg: Any) -> None:
        task = asyncio.create_task(self._apply(name, key, op, arg))
        self.pending.add(task)
        task.add_done_callback(self.pending.discard)

    async def signal_entity(
        self, entityId: df.EntityId, operation_name: str, operation_input: Any = None
    ) -> None:
        if self.fail_with:
            raise self.fail_with
        if self.hang_signals:
            await asyncio.Event().wait()  # a back end that never answers
        self.signals.append((entityId.name, entityId.key, operation_name, operation_input))
        self._schedule(entityId.name, entityId.key, operation_name, operation_input)

    async def read_entity_state(self, entityId: df.EntityId) -> EntityStateResponse:
        self.reads += 1
        if self.fail_with or self.read_fail_with:
            raise self.fail_with or self.read_fail_with  # type: ignore[misc]
        if self.hang_reads:
            await asyncio.Event().wait()
        state = self.states.get((entityId.name.lower(), entityId.key))
        if state is None:
            return EntityStateResponse(False)
        return EntityStateResponse(True, json.loads(state))

    async def list_entities(self, name: str, top: int, token: str | None) -> tuple[list[Any], str | None]:
        """The Durable HTTP API's entity listing: instance-id (key) order, `top` per page."""
        keys = sorted(key for (entity, key) in self.states if entity == name.lower())
        if token is not None:
            keys = [key for key in keys if key > token]
        page = keys[:top]
        items = [
            {
                "entityId": {"name": name.lower(), "key": key},
                "lastOperationTime": self.last_operation[(name.lower(), key)],
            }
            for key in page
        ]
        return items, (page[-1] if len(keys) > top else None)

    async def drain(self) -> None:
        while self.pending:
            await asyncio.gather(*list(self.pending))

    # -- calling the app's HTTP functions ---------------------------------
    async def call(
        self,
        function_name: str,
        method: str,
        url: str,
        *,
        body: bytes | str | None = None,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        **route_params: str,
    ) -> tuple[int, Any]:
        """Call an HTTP function; the body comes back parsed when it is JSON, else as text."""
        fn = self.functions[function_name].get_user_function()
        if isinstance(body, str):
            body = body.encode()
        req = func.HttpRequest(
            method,
            url,
            body=body or b"",
            route_params=route_params,
            headers=headers or {},
            params=params or {},
        )
        target = getattr(fn, "client_function", None)
        if target is not None:
            response = await target(req=req, client=self)
        else:
            response = fn(req=req)
        self.last_response = response
        text = response.get_body().decode()
        if not text or (response.mimetype or "").startswith("text/plain"):
            return response.status_code, text
        return response.status_code, json.loads(text)

    async def run(
        self,
        agent: str,
        payload: Any,
        headers: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        body = _json_body(payload)
        return await self.call(
            "dafx_run_agent",
            "POST",
            f"http://localhost/api/agents/{agent}/run",
            body=body,
            headers=headers,
            params=params,
            agent_name=agent,
        )

    async def sessions(
        self, agent: str, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        return await self.call(
            "dafx_list_sessions",
            "GET",
            f"http://localhost/api/agents/{agent}",
            params=params,
            headers=headers,
            agent_name=agent,
        )

    async def delete(self, agent: str, session: str) -> tuple[int, Any]:
        return await self.call(
            "dafx_delete_session",
            "DELETE",
            f"http://localhost/api/agents/{agent}/{session}",
            agent_name=agent,
            session_id=session,
        )

    async def state(self, agent: str, session: str) -> tuple[int, Any]:
        return await self.call(
            "dafx_get_session",
            "GET",
            f"http://localhost/api/agents/{agent}/{session}",
            agent_name=agent,
            session_id=session,
        )

    async def fork(self, agent: str, session: str, payload: Any) -> tuple[int, Any]:
        url = f"http://localhost/api/agents/{agent}/{session}/fork"
        body = _json_body(payload)
        return await self.call(
            "dafx_fork_session", "POST", url, body=body, agent_name=agent, session_id=session
        )


def _json_body(payload: Any) -> str | bytes:
    """A request body: text or bytes as given (to send malformed bodies), anything else as JSON."""
    return payload if isinstance(payload, (str, bytes)) else json.dumps(payload)


def make_agent(client: ScriptedChatClient, name: str = "WeatherAgent") -> Agent:
    return Agent(client=client, name=name, instructions="You answer weather questions.", tools=[get_weather])


@pytest.fixture
def local_development(monkeypatch: pytest.MonkeyPatch) -> None:
    """Run as `func start` runs an app: the model-swap variables are honoured only there."""
    monkeypatch.setenv("AZURE_FUNCTIONS_ENVIRONMENT", "Development")
    monkeypatch.delenv("DURABLEAGENT_LOCAL_HOST", raising=False)


@pytest.fixture
def build():
    """Build an app from agents and return (app, client double)."""

    def _build(*agents: Agent, **kwargs: Any) -> tuple[AgentFunctionApp, DurableClientDouble]:
        app = AgentFunctionApp(agents=list(agents), **kwargs)
        return app, DurableClientDouble(app)

    return _build
