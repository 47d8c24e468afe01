"""`AgentFunctionApp`: a `DFApp` that turns agents into durable, HTTP-reachable sessions."""

from __future__ import annotations

import logging
import math
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import partial
from types import MappingProxyType
from typing import Any

import azure.durable_functions as df
import azure.functions as func
from agent_framework import SupportsAgentRun, Workflow
from azure.durable_functions.decorators.metadata import EntityTrigger

from ._fork_route import fork as fork_session
from ._routes import AgentRoutes
from ._run_request import EVENT_STREAM
from ._sse import EventStream
from ._storage import LazyIndex, LazyStore
from .callbacks import AgentResponseCallbackProtocol
from .entity import agent_type_of, create_entity_function
from .fork import entity_handler
from .orchestration import OrchestrationAgent, get_agent
from .scripting import ScriptSwap
from .session import entity_name_for
from .streams import DEFAULT_TTL, StreamStore
from .turns import Polling, Turns
from .workflows.orchestrator import function_name as workflow_function_name
from .workflows.orchestrator import orchestrator_for
from .workflows.registry import RegisteredWorkflow, built, plan, workflow_name
from .workflows.routes import WorkflowRoutes
from .workflows.step import run_step

logger = logging.getLogger(__name__)

_AGENT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
RUN_TIMEOUT_ENV = "DURABLEAGENT_RUN_TIMEOUT"
DEFAULT_SWEEP_SCHEDULE = "0 */5 * * * *"


@dataclass(frozen=True)
class RegisteredAgent:
    name: str
    agent: SupportsAgentRun
    callback: AgentResponseCallbackProtocol | None
    entity_name: str
    http_endpoint_enabled: bool = True
    workflow: str | None = None
    """The workflow whose agent executor this is (None: an agent of its own)."""


def _function_name(agent_name: str) -> str:
    """The entity's Functions function name: identifier characters only (`a-b` -> `dafx_a_b_entity`)."""
    return "dafx_" + re.sub(r"\W", "_", agent_name) + "_entity"


def _polling_from_env() -> Polling:
    raw = os.environ.get(RUN_TIMEOUT_ENV)
    if not raw:
        return Polling()
    try:
        timeout = float(raw)
    except ValueError:
        timeout = math.nan
    if not math.isfinite(timeout) or timeout <= 0:
        raise ValueError(f"{RUN_TIMEOUT_ENV}={raw!r} must be a positive number of seconds")
    return Polling(timeout=timeout)


class AgentFunctionApp(df.DFApp):
    """Registers one durable entity per agent plus the run/state/health HTTP routes.

    The routes are generic (`agents/{agent_name}/...`) so an unknown agent gets a JSON 404
    from us rather than a bare 404 from the host. Every other trigger a user adds to this
    app (timers, queues, their own routes) is registered exactly as on a plain `DFApp`.
    """

    def __init__(
        self,
        agents: Iterable[SupportsAgentRun] | None = None,
        http_auth_level: func.AuthLevel = func.AuthLevel.ANONYMOUS,
        enable_health_check: bool = True,
        default_callback: AgentResponseCallbackProtocol | None = None,
        *,
        enable_http_endpoints: bool = True,
        polling: Polling | None = None,
        session_ttl: timedelta | None = None,
        session_sweep_schedule: str = DEFAULT_SWEEP_SCHEDULE,
        streaming: bool = True,
        stream_ttl: timedelta = DEFAULT_TTL,
        stream_store: StreamStore | None = None,
        http_streams: bool = False,
        workflow: Workflow | None = None,
        workflows: Iterable[Workflow] | Mapping[str, Workflow] | None = None,
    ) -> None:
        """`session_ttl`: sessions whose last turn is older than this are removed, by a timer
        trigger on `session_sweep_schedule` (NCRONTAB, default every 5 minutes), and between two
        sweeps by the session list route for the agent it lists.

        Server-Sent Events (`Accept: text/event-stream` on the run route): `streaming` turns the
        per-turn streams on (stored in `stream_store`, default a table in the app's own storage
        account, `streams.py`), kept for `stream_ttl`. `http_streams` registers the routes with the
        HTTP streams extension's types (`azurefunctions-extensions-http-fastapi`), so events reach
        the client as they are stored; the extension switches every HTTP function of the app to
        those types, so it is off by default, and without it the events arrive in one body when
        the turn ends.

        `workflow` / `workflows` (a list, or a mapping name -> workflow): agent-framework
        workflows hosted as durable orchestrations, as `add_workflow` registers them."""
        if session_ttl is not None and session_ttl <= timedelta(0):
            raise ValueError(f"session_ttl must be positive, got {session_ttl}")
        super().__init__(http_auth_level=http_auth_level)
        self._agents: dict[str, RegisteredAgent] = {}
        self.default_callback = default_callback
        self.enable_http_endpoints = enable_http_endpoints
        self._script_swap = ScriptSwap.from_env()
        if stream_ttl <= timedelta(0):
            raise ValueError(f"stream_ttl must be positive, got {stream_ttl}")
        self._streams = LazyStore(stream_ttl, stream_store) if streaming else None
        self.http_streams = http_streams
        self._index = LazyIndex()
        self._routes = AgentRoutes(
            self._resolve_http,
            self._agents_info,
            polling or _polling_from_env(),
            session_ttl,
            self._streams,
            self._index,
        )
        self._workflows: dict[str, RegisteredWorkflow] = {}
        self._swapped: set[int] = set()
        self._workflow_routes = WorkflowRoutes(self._resolve_workflow, self._streams)
        self._register_routes(enable_health_check)
        if session_ttl is not None:
            self._register_sweeper(session_sweep_schedule)
        for agent in agents or ():
            self.add_agent(agent)
        if workflow is not None:
            self.add_workflow(workflow)
        if isinstance(workflows, Mapping):
            for name, wf in workflows.items():
                self.add_workflow(wf, name=name)
        else:
            for wf in workflows or ():
                self.add_workflow(wf)

    @property
    def agents(self) -> Mapping[str, SupportsAgentRun]:
        return MappingProxyType({name: reg.agent for name, reg in self._agents.items()})

    def add_agent(
        self,
        agent: SupportsAgentRun,
        callback: AgentResponseCallbackProtocol | None = None,
        enable_http_endpoint: bool | None = None,
    ) -> None:
        """Register `agent`: its session entity always, its HTTP routes unless `enable_http_endpoint`
        is False (None: the app's `enable_http_endpoints`). An agent only orchestrations call needs
        no public route, and one without routes cannot be run or read over HTTP by accident."""
        name = getattr(agent, "name", None)
        if not isinstance(name, str) or not name.strip():
            raise ValueError(
                f"agent {agent!r} has no name; give it one, e.g. Agent(name='WeatherAgent', ...)"
            )
        http = self.enable_http_endpoints if enable_http_endpoint is None else bool(enable_http_endpoint)
        self._register_agent(agent, name, callback or self.default_callback, http)

    def _register_agent(
        self,
        agent: SupportsAgentRun,
        name: str,
        callback: AgentResponseCallbackProtocol | None,
        http: bool,
        workflow: str | None = None,
    ) -> None:
        if not _AGENT_NAME.match(name):
            raise ValueError(
                f"agent name {name!r} is not usable in routes and entity ids; "
                "use letters, digits, '-', '_' and '.' (at most 100 characters)"
            )
        if self._resolve(name) is not None:
            raise ValueError(f"an agent named {name!r} is already registered (names are case-insensitive)")
        function_name = _function_name(name)
        # Function names keep only identifier characters, so distinct agent names can collide;
        # the host would only notice when it indexes the app, far from the cause.
        clash = next((n for n in self._agents if _function_name(n).lower() == function_name.lower()), None)
        if clash is not None:
            raise ValueError(
                f"agent name {name!r} and the registered {clash!r} both become function {function_name!r}; "
                "rename one of them"
            )
        if id(agent) not in self._swapped:  # one agent may serve a workflow and its own routes
            self._script_swap.apply(agent)
            self._swapped.add(id(agent))
        registered = RegisteredAgent(name, agent, callback, entity_name_for(name), http, workflow)
        entity = create_entity_function(agent, name, registered.callback, self._streams, self._index)
        entity.__name__ = function_name
        self.function_name(function_name)(self._entity_trigger(registered.entity_name, entity))
        self._agents[name] = registered
        logger.info("registered agent %s as entity %s", name, registered.entity_name)

    def add_workflow(
        self,
        workflow: Workflow,
        name: str | None = None,
        *,
        enable_http_endpoint: bool | None = None,
        request_timeout: timedelta | None = None,
    ) -> None:
        """Host an agent-framework `Workflow` (or a `WorkflowBuilder`) as a durable orchestration,
        named `name` or the workflow's own name (docs/workflows.md). Its agent executors become
        session entities (`{name}-{executor}`), its other executors activities, its sub-workflows
        child orchestrations; `request_timeout` fails an instance whose human-input request is not
        answered in time (default: wait as long as it takes)."""
        if request_timeout is not None and request_timeout <= timedelta(0):
            raise ValueError(f"request_timeout must be positive, got {request_timeout}")
        workflow = built(workflow, name or getattr(workflow, "name", None))
        chosen = workflow_name(workflow, name)
        http = self.enable_http_endpoints if enable_http_endpoint is None else bool(enable_http_endpoint)
        registrations = plan(workflow, chosen, http, request_timeout)
        for registration in registrations:
            if self._resolve_any_workflow(registration.name) is not None:
                raise ValueError(f"a workflow named {registration.name!r} is already registered")
        for registration in registrations:
            self._register_workflow(registration)
        logger.info("registered workflow %s (%d executors)", chosen, len(workflow.executors))

    def _register_workflow(self, registration: RegisteredWorkflow) -> None:
        name, workflow = registration.name, registration.workflow
        for executor_id, agent_name in registration.agents.items():
            agent = workflow.executors[executor_id]._agent  # type: ignore[attr-defined]
            self._register_agent(
                agent, agent_name, self.default_callback, registration.http_endpoint_enabled, name
            )
        for executor_id, executor in workflow.executors.items():
            if executor_id in registration.agents or executor_id in registration.sub_names:
                continue
            self._register_step(workflow, name, executor)
        orchestrator = orchestrator_for(workflow, name, registration.sub_names, registration.request_timeout)
        orchestrator.__name__ = workflow_function_name(name).replace("-", "_")
        self.function_name(workflow_function_name(name))(
            self.orchestration_trigger(context_name="context")(orchestrator)
        )
        self._workflows[name] = registration
        if registration.top_level and registration.http_endpoint_enabled:
            self._register_workflow_routes(name)

    def _register_step(self, workflow: Workflow, name: str, executor: Any) -> None:
        async def step(payload: dict[str, Any]) -> dict[str, Any]:
            return await run_step(workflow, executor, payload)

        step.__name__ = workflow_function_name(name, executor.id).replace("-", "_")
        self.function_name(workflow_function_name(name, executor.id))(
            self.activity_trigger(input_name="payload")(step)
        )

    @property
    def turns(self) -> Turns:
        """Runs turns of this app's agents from async code (`turns.py`): what the run route uses,
        and what another trigger (an MCP tool call: one turn, its reply) calls with its durable
        client: `await app.turns.run(client, Turn.new(agent, request))`."""
        return self._routes.turns

    @property
    def workflows(self) -> Mapping[str, Workflow]:
        return MappingProxyType(
            {name: reg.workflow for name, reg in self._workflows.items() if reg.top_level}
        )

    def get_agent(
        self, context: df.DurableOrchestrationContext, name: str, workflow_name: str | None = None
    ) -> OrchestrationAgent:
        """The agent `name` inside an orchestrator: `yield agent.run(...)` gives an `AgentResponse`.
        With `workflow_name`, the agent executor `name` of that workflow (its workflow-scoped
        sessions)."""
        if workflow_name is not None:
            registration = self._resolve_any_workflow(workflow_name)
            if registration is None:
                raise ValueError(
                    f"unknown workflow {workflow_name!r}; workflows: {', '.join(self._workflows) or 'none'}"
                )
            executor = next((e for e in registration.agents if e.lower() == str(name).lower()), None)
            if executor is None:
                raise ValueError(
                    f"workflow {registration.name!r} has no agent executor {name!r}; "
                    f"agent executors: {', '.join(registration.agents) or 'none'}"
                )
            name = registration.agents[executor]
        return get_agent(context, name, self._resolve, list(self._agents))

    # -- internals ------------------------------------------------------
    def _resolve(self, name: str) -> str | None:
        """Entity names are case-insensitive in Durable Functions, so agent lookups are too."""
        if name in self._agents:
            return name
        lowered = name.lower()
        return next((n for n in self._agents if n.lower() == lowered), None)

    def _resolve_http(self, name: str) -> str | None:
        """The routes' lookup: agents registered without an HTTP endpoint are unknown there."""
        resolved = self._resolve(name)
        if resolved is None or not self._agents[resolved].http_endpoint_enabled:
            return None
        return resolved

    def _resolve_any_workflow(self, name: str) -> RegisteredWorkflow | None:
        lowered = name.lower()
        return next((r for n, r in self._workflows.items() if n.lower() == lowered), None)

    def _resolve_workflow(self, name: str) -> tuple[str, Workflow] | None:
        """The routes' lookup (a registered name in any case)."""
        found = self._resolve_any_workflow(name)
        if found is None or not found.top_level or not found.http_endpoint_enabled:
            return None
        return found.name, found.workflow

    def _register_workflow_routes(self, name: str) -> None:
        """Microsoft's three functions per workflow (`dafx-{name}-start|status|respond`)."""
        routes = self._workflow_routes
        table = [
            ("start", f"workflow/{name}/run", "POST", routes.run),
            ("status", f"workflow/{name}/status/{{instance_id}}", "GET", routes.status),
            ("respond", f"workflow/{name}/respond/{{instance_id}}/{{request_id}}", "POST", routes.respond),
        ]
        for suffix, route, method, handler in table:
            fname = f"{workflow_function_name(name)}-{suffix}"
            bound = partial(handler, workflow=name)
            if self.http_streams:  # events reach the client as they happen (see __init__)
                from ._http_streams import streamed

                function = streamed(bound)
                function.__name__ = fname.replace("-", "_")
            else:
                function = _classic(fname.replace("-", "_"), bound)
            self.function_name(fname)(
                self.route(route=route, methods=[method])(
                    self.durable_client_input(client_name="client")(function)
                )
            )

    def _agents_info(self) -> list[dict[str, Any]]:
        return [
            {"name": r.name, "type": agent_type_of(r.agent), "http_endpoint_enabled": r.http_endpoint_enabled}
            for r in self._agents.values()
        ]

    def _entity_trigger(self, entity_name: str, entity: Callable[[df.DurableEntityContext], None]) -> Any:
        """`entity_trigger(...)(entity)`, with durableagent's handler in place of the SDK's: the same
        handling plus the signals an operation sends to other entities (`fork`), which the SDK's
        own handler has no way to send."""
        handle = entity_handler(entity)
        handle.__name__ = entity.__name__

        @self._configure_function_builder
        def wrap(builder: Any) -> Any:
            builder.add_trigger(trigger=EntityTrigger(name="context", entity_name=entity_name))
            return builder

        return wrap(handle)

    def _register_sweeper(self, schedule: str) -> None:
        routes = self._routes

        @self.function_name("dafx_session_sweeper")
        @self.timer_trigger(schedule=schedule, arg_name="timer")
        @self.durable_client_input(client_name="client")
        async def dafx_session_sweeper(timer: func.TimerRequest, client: Any) -> None:
            signalled = await routes.sweep(client, list(self._agents))
            logger.info("session sweep: %d idle session(s) signalled to expire", signalled)

    def _register_routes(self, enable_health_check: bool) -> None:
        routes = self._routes
        if self.http_streams:
            from ._http_streams import register_streaming_routes

            register_streaming_routes(self, route_table(routes), routes, enable_health_check)
            return

        for name, route, method, handler in route_table(routes):
            self.function_name(name)(
                self.route(route=route, methods=[method])(
                    self.durable_client_input(client_name="client")(_classic(name, handler))
                )
            )

        if enable_health_check:

            @self.function_name("dafx_health")
            @self.route(route="health", methods=["GET"])
            def dafx_health(req: func.HttpRequest) -> func.HttpResponse:
                return routes.health(req)


STREAM_ROUTE = "agents/{agent_name}/{session_id}/stream/{correlation_id}"
Handler = Callable[[func.HttpRequest, Any], Awaitable[func.HttpResponse | EventStream]]


def route_table(routes: AgentRoutes) -> list[tuple[str, str, str, Handler]]:
    """(function name, route, method, handler) of every agent route but health, in registration
    order; both registrations (classic and HTTP streams) serve exactly these."""
    return [
        ("dafx_run_agent", "agents/{agent_name}/run", "POST", routes.run),
        ("dafx_stream_turn", STREAM_ROUTE, "GET", routes.stream),
        ("dafx_get_session", "agents/{agent_name}/{session_id}", "GET", routes.state),
        ("dafx_list_sessions", "agents/{agent_name}", "GET", routes.sessions),
        ("dafx_fork_session", "agents/{agent_name}/{session_id}/fork", "POST", partial(fork_session, routes)),
        ("dafx_delete_session", "agents/{agent_name}/{session_id}", "DELETE", routes.delete),
    ]


def _classic(name: str, handler: Handler) -> Callable[[func.HttpRequest, Any], Awaitable[func.HttpResponse]]:
    """A classic HTTP function around one route handler (event streams sent whole)."""

    async def function(req: func.HttpRequest, client: Any) -> func.HttpResponse:
        return await whole(await handler(req, client))

    function.__name__ = function.__qualname__ = name
    return function


async def whole(result: func.HttpResponse | EventStream) -> func.HttpResponse:
    """A route's answer as one response: an event stream is sent once its turn has ended (a host
    without the HTTP streams extension cannot send a body in parts)."""
    if isinstance(result, func.HttpResponse):
        return result
    body = await result.collect()
    return func.HttpResponse(
        body, status_code=200, mimetype=EVENT_STREAM, charset="utf-8", headers=result.headers
    )
