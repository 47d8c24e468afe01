"""Assemble the local host (app index + HTTP triggers + Durable API + entity workers) and its CLI.

`LocalHost` is the in-process async API (tests); `main(argv)` is `host [APP_DIR] --port ...`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import logging
import math
import os
import secrets
import signal
import sys
import time
import uuid
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import grpc
from aiohttp import web
from azure.core.exceptions import AzureError
from durabletask.internal.orchestrator_service_pb2_grpc import (
    add_TaskHubSidecarServiceServicer_to_server as add_sidecar_service,
)

from durableagent._backend import BackendUnavailable
from durableagent._commits import COMMITS
from durableagent.clock import use_time_source
from durableagent.scripting import LOCAL_HOST_ENV
from harness.processes import port_argument

from .api import BASE_PATH, ApiGuard, KeyPolicy, unsupported
from .clock import TIME_MODES, VIRTUAL_TIME_ENV, Clock, VirtualClock, clock_for
from .clock_api import ClockApi, RequestCount
from .entities.api import MAX_SIGNAL_BODY, EntityApi
from .entities.dispatcher import EntityDispatcher, RemoteEntities
from .entities.store import EntityStore, StorageUnavailable
from .errors import AppLoadError
from .isolated.index import remote_index
from .isolated.interpreter import app_python, require_2x
from .isolated.process import AppProcess
from .isolated.work import AppWorkItems
from .loader import AppIndex, load_app
from .orchestrations.api import InstanceApi
from .orchestrations.engine import EngineSettings, OrchestrationEngine
from .orchestrations.executor import RemoteExecutor
from .orchestrations.store import InstanceStore
from .responses import PARSER_LIMIT, JsonErrorRunner, json_errors, json_response
from .settings import KEY_ENV, HostConfig, apply_local_settings, export_storage
from .sidecar.listen import MAX_MESSAGE, grpc_server
from .sidecar.service import SidecarService
from .storage.hub_clock import HubClock
from .storage.lease import HubLease, new_lease_id
from .triggers.base import MCP_PATH, Trigger, TriggerServices
from .triggers.http import MAX_HTTP_BODY, FunctionServer
from .triggers.outputs import OutputWriter
from .triggers.registry import KINDS, kind, mcp_endpoint
from .workers import DaemonThreadPool, format_timespan

if TYPE_CHECKING:
    from .triggers.mcp import McpEndpoint

HOSTNAME_ENV = "WEBSITE_HOSTNAME"
"""Set (unless the user did) to `localhost:{port}` as `func start` sets it: apps build URLs from it."""

log = logging.getLogger(__name__)

HOST_VERSION = "4.0.0-durableagent-local"
GC_THRESHOLDS = (50_000, 20, 20)  # see _tune_gc; CPython defaults to (700, 10, 10)


async def _reset_sdk_http_session() -> None:
    """Close and forget the Durable SDK's shared aiohttp session (it is bound to one event loop).

    Only matters when several hosts run one after another in one process (tests): each has a new loop.
    """
    try:
        from azure.durable_functions.models.utils import http_utils
    except ImportError:  # pragma: no cover - SDK layout changed
        return
    session = getattr(http_utils, "_client_session", None)
    if session is not None and not session.closed:
        try:
            await session.close()
        except Exception:  # created on another (closed) loop: just drop it
            log.debug("could not close the SDK's HTTP session", exc_info=True)
    if hasattr(http_utils, "_client_session"):
        http_utils._client_session = None
    if hasattr(http_utils, "_session_lock"):
        http_utils._session_lock = asyncio.Lock()


class LocalHost:
    """The local Functions host, usable in-process: `async with LocalHost(dir, port=0) as host: host.url`."""

    def __init__(
        self,
        app_dir: str | os.PathLike[str] = ".",
        *,
        port: int = 7071,
        host: str = "127.0.0.1",
        storage: str | None = None,
        enforce_keys: bool = False,
        function_key: str | None = None,
        hub_name: str | None = None,
        clock: Clock | None = None,
        remote: RemoteExecutor | None = None,
        remote_entities: RemoteEntities | None = None,
        python: str | os.PathLike[str] | None = None,
    ) -> None:
        """`clock`: what time it is for everything durable on the host (default: the wall clock);
        `remote` / `remote_entities`: run the orchestrators and activities / the entity batches instead
        of the app (the sidecar's workers); `python`: run the app in that interpreter (default: the
        app folder's `.venv` when it holds Durable Functions 2.x, else this process; see
        `isolated/interpreter.py`)."""
        self.remote = remote
        self.remote_entities = remote_entities
        self.python = python
        self.app_process: AppProcess | None = None  # the app's own interpreter, when it has one
        self._grpc: grpc.aio.Server | None = None  # the durable client's endpoint for a 2.x app
        self.grpc_port: int | None = None
        self.app_dir = Path(app_dir).resolve()
        self.port = port
        self.host = host
        self._storage_arg = storage
        self.enforce_keys = enforce_keys
        self.function_key = function_key or os.environ.get(KEY_ENV) or secrets.token_urlsafe(24)
        self._hub_arg = hub_name
        self.instance_id = uuid.uuid4().hex
        self.clock = clock or Clock()
        self.index: AppIndex | None = None
        self.config: HostConfig | None = None
        self.store: EntityStore | None = None
        self.dispatcher: EntityDispatcher | None = None
        self._commits_served: str | None = None
        self.instances: InstanceStore | None = None
        self.engine: OrchestrationEngine | None = None
        self.triggers: list[Trigger] = []  # one per trigger kind the app uses (`triggers/registry.py`)
        self.mcp: McpEndpoint | None = None  # the app's MCP trigger functions at /runtime/webhooks/mcp
        self.outputs: OutputWriter | None = None
        self._runner: web.AppRunner | None = None
        self._executor: DaemonThreadPool | None = None
        self._applied_settings: dict[str, str] = {}
        self._rpc_secret = secrets.token_hex(16)
        self._resume_task: asyncio.Task[None] | None = None
        self.lease: HubLease | None = None
        self._hub_clock: HubClock | None = None
        self._started = 0.0
        self._running = False  # every trigger prepared and started: the status says Running

    @property
    def url(self) -> str:
        """Base URL clients should use (loopback when bound to all interfaces)."""
        shown = "127.0.0.1" if self.host in {"0.0.0.0", "", "::"} else self.host
        return f"http://{shown}:{self.port}"

    @property
    def hub_name(self) -> str:
        """The task hub in use."""
        assert self.config is not None
        return self.config.hub_name

    def rpc_base_url(self) -> str:
        """What the durable client binding points at; a secret base when keys are enforced."""
        base = f"{self.url}{BASE_PATH}/"
        return f"{base}rpc-{self._rpc_secret}/" if self.enforce_keys else base

    def management_urls(self, iid: str = "INSTANCEID", origin: str | None = None) -> dict[str, str]:
        """The URLs of one instance, as a check-status response lists them (on `origin` if given)."""
        public = f"{origin or self.url}{BASE_PATH}/"
        query = f"taskHub={self.hub_name}&connection=Storage"
        if self.enforce_keys:
            query += f"&code={self.function_key}"
        # The id is one path segment: escaped, so that '%2F', a space or a non-ASCII character in it
        # reaches the same instance when a client follows the URL (the `id` field stays as it is).
        instance = f"{public}instances/{quote(iid, safe='')}"
        return {
            "id": iid,
            "statusQueryGetUri": f"{instance}?{query}",
            "sendEventPostUri": f"{instance}/raiseEvent/{{eventName}}?{query}",
            "terminatePostUri": f"{instance}/terminate?reason={{text}}&{query}",
            "rewindPostUri": f"{instance}/rewind?reason={{text}}&{query}",
            "purgeHistoryDeleteUri": f"{instance}?{query}",
            "restartPostUri": f"{instance}/restart?{query}",
            "suspendPostUri": f"{instance}/suspend?reason={{text}}&{query}",
            "resumePostUri": f"{instance}/resume?reason={{text}}&{query}",
        }

    def client_binding(self) -> str:
        """The durable client binding JSON string the SDK's DurableOrchestrationClient parses."""
        rpc = self.rpc_base_url()
        public = f"{self.url}{BASE_PATH}/"
        query = f"taskHub={self.hub_name}&connection=Storage"
        if self.enforce_keys:
            query += f"&code={self.function_key}"
        management = self.management_urls()
        if self.grpc_port is not None:  # Durable Functions 2.x: the client speaks gRPC to the engine
            return json.dumps(
                {
                    "taskHubName": self.hub_name,
                    "rpcBaseUrl": f"http://127.0.0.1:{self.grpc_port}",
                    "httpBaseUrl": f"{self.url}{BASE_PATH}",
                    "baseUrl": f"{self.url}{BASE_PATH}",
                    "managementUrls": management,
                    "requiredQueryStringParameters": query,
                    "maxGrpcMessageSizeInBytes": MAX_MESSAGE,
                }
            )
        creation = {
            "createNewInstancePostUri": f"{public}orchestrators/{{functionName}}[/{{instanceId}}]?{query}",
            "createAndWaitOnNewInstancePostUri": (
                f"{public}orchestrators/{{functionName}}[/{{instanceId}}]?timeout={{timeoutInSeconds}}"
                f"&pollingInterval={{intervalInSeconds}}&{query}"
            ),
        }
        return json.dumps(
            {
                "taskHubName": self.hub_name,
                "creationUrls": creation,
                "managementUrls": management,
                "rpcBaseUrl": rpc,
                "baseUrl": rpc,
                "requiredQueryStringParameters": f"code={self.function_key}" if self.enforce_keys else "",
            }
        )

    async def start(self) -> LocalHost:
        """Load the app, connect storage, bind the port, resume pending signals, log the banner."""
        try:
            return await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> LocalHost:
        self._applied_settings = apply_local_settings(self.app_dir)
        storage, exported = export_storage(self._storage_arg)  # before the app's import reads it
        self._applied_settings.update(exported)
        if LOCAL_HOST_ENV not in os.environ:  # durableagent's model swap is honoured only here
            self._applied_settings[LOCAL_HOST_ENV] = os.environ[LOCAL_HOST_ENV] = "1"
        config = HostConfig.load(self.app_dir)
        if self._hub_arg:
            config = dataclasses.replace(config, hub_name=self._hub_arg)
        self.config = config
        self.index = await self._load_app(config)
        self.store = EntityStore(storage, config.hub_name, self.clock)
        self.instances = InstanceStore(storage, config.hub_name, self.clock)
        try:
            await self.store.open()
            await self.instances.open()
        except StorageUnavailable as exc:
            log.warning("storage not reachable yet (%s); durable calls answer 503 until it is", exc)
        # Daemon threads that a timed-out call gives up: a hung function never blocks the exit.
        self._executor = DaemonThreadPool(32, thread_name_prefix="host-worker")
        self.outputs = OutputWriter(storage, encode=config.queue_encoding == "base64")
        for name, outputs in self.index.outputs():
            self.outputs.check(name, outputs)
        keys = KeyPolicy(self.enforce_keys, self.function_key)
        timeout = config.function_timeout
        self.dispatcher = EntityDispatcher(
            self.store, self.index.entities, self._executor, timeout, self.remote_entities
        )
        self.engine = OrchestrationEngine(
            self.instances,
            self.dispatcher,
            self.index.orchestrators,
            self.index.activities,
            self._executor,
            self.outputs,
            EngineSettings(config.max_activities, config.max_orchestrators, timeout),
            self.clock,
            self.remote,
        )
        if self.app_process is not None:  # the 2.x app's durable client calls the engine over gRPC
            work = self.remote
            assert isinstance(work, AppWorkItems)
            self._grpc, self.grpc_port = grpc_server("127.0.0.1", 0)
            add_sidecar_service(SidecarService(self.engine, work, config.hub_name), self._grpc)
            await self._grpc.start()
        functions = FunctionServer(
            self.index,
            config.route_prefix,
            self._executor,
            self.client_binding,
            keys,
            str(self.app_dir),
            self.outputs,
            timeout,
        )
        requests = RequestCount(BASE_PATH, (MCP_PATH,))
        app = web.Application(client_max_size=MAX_HTTP_BODY, middlewares=[json_errors, requests.middleware])
        app.router.add_get("/admin/host/status", self._status)
        ClockApi(self.clock, keys).add_routes(app)
        services = TriggerServices(
            self._executor,
            self.client_binding,
            self.outputs,
            self.engine.scheduler,
            storage,
            config,
            self.clock,
        )
        self.triggers = [
            kind(binding_type).create(self.index.triggered[binding_type], services)
            for binding_type in KINDS
            if self.index.triggered.get(binding_type)
        ]
        instance_api = InstanceApi(
            self.engine, lambda iid, request: self.management_urls(iid, f"{request.scheme}://{request.host}")
        )
        guard = ApiGuard(keys)
        entity_api = EntityApi(self.store, self.dispatcher)
        bases = [(BASE_PATH, False)]
        if self.enforce_keys:  # the SDK's client binding calls a secret base that skips the key check
            bases.insert(0, (f"{BASE_PATH}/rpc-{self._rpc_secret}", True))
        for base, trusted in bases:
            wrap = guard.wrap(trusted)
            entity_api.add_routes(app, base, wrap)
            instance_api.add_routes(app, base, wrap)
            app.router.add_route("*", base + r"/{tail:[\s\S]*}", wrap(unsupported))
        self.mcp = mcp_endpoint(self.triggers, keys)
        if self.mcp is not None:
            self.mcp.add_routes(app)
        app.router.add_route("*", r"/{tail:[\s\S]*}", functions.handle)
        self._runner = JsonErrorRunner(
            app,
            access_log=None,
            handle_signals=False,
            max_line_size=PARSER_LIMIT,
            max_field_size=PARSER_LIMIT,
        )
        await self._runner.setup()
        # The port before the hub: a start on a busy port ends here, without touching the lease of
        # the host that has the port (and maybe the hub). Connections wait in the backlog meanwhile.
        site = _BindFirstSite(self._runner, self.host, self.port)
        self.port = await site.bind()
        if HOSTNAME_ENV not in os.environ:  # as `func start` sets it: apps build their own URLs from it
            self._applied_settings[HOSTNAME_ENV] = os.environ[HOSTNAME_ENV] = f"localhost:{self.port}"
        if self.app_process is not None:
            self.app_process.set_env({HOSTNAME_ENV: os.environ[HOSTNAME_ENV]})
        # The hub is ours before anything is served (a second host refuses to start here).
        self.lease = HubLease(storage, config.hub_name, new_lease_id(), self.url, self._lease_changed)
        await self.lease.acquire()
        await self._bind_clock(storage, config.hub_name, requests)
        guard.gate = self.dispatcher.gate = self.engine.gate = self.lease.problem
        self.store.gate = self.instances.gate = self.lease.problem
        # The app's turns in this process are woken by the commits of their entities (no polling).
        backend = self.rpc_base_url()
        self.dispatcher.committed = partial(COMMITS.committed, backend)
        COMMITS.serve(backend, self._accept_inline)
        self._commits_served = backend
        await site.start()
        self._started = time.monotonic()
        self._resume_task = asyncio.get_running_loop().create_task(self._resume())
        for trigger in self.triggers:
            await trigger.prepare()
            trigger.start()
        if isinstance(self.clock, VirtualClock):
            self.clock.start()
        if self.mcp is not None:
            await self.mcp.start()
        self._banner(functions)
        self._running = True
        return self

    async def _load_app(self, config: HostConfig) -> AppIndex:
        """The app's index: imported here, or described by the app's own interpreter (Durable
        Functions 2.x), whose orchestrators, activities and entities the engine then runs there."""
        python = app_python(self.app_dir, self.python)
        if python is None:
            return load_app(self.app_dir)
        self.app_process = AppProcess(python, self.app_dir)
        description = await self.app_process.start()
        sdk = require_2x(description, python)
        index = remote_index(self.app_process)
        work = AppWorkItems(self.app_process, index, config.function_timeout)
        self.remote = self.remote_entities = work
        log.info("app runs in %s (Python %s, azure-functions-durable %s)", python, description["python"], sdk)
        return index

    async def _bind_clock(self, storage: str, hub: str, requests: RequestCount) -> None:
        """The hub's kind of time checked (a virtual hub refuses a real host and the other way round)
        and a virtual clock set where the hub's stood, told what counts as busy, and lent to the
        app's library (its stamps and TTL checks then agree with the host's)."""
        self._hub_clock = HubClock(storage, hub)
        await self._hub_clock.bind(self.clock)
        if isinstance(self.clock, VirtualClock):
            dispatcher, engine = self.dispatcher, self.engine
            assert dispatcher is not None and engine is not None
            self.clock.busy = lambda: dispatcher.busy() or engine.busy()
            self.clock.requests_busy = requests.busy
            use_time_source(self.clock.now)

    async def _resume(self) -> None:
        """Restart workers for signals and instances an earlier run left; retried while storage is down."""
        assert self.dispatcher is not None and self.engine is not None
        delay = 0.5
        entities_done = False
        while True:
            try:
                if not entities_done:
                    count = await self.dispatcher.resume()
                    entities_done = True
                    if count:
                        log.info("resumed %d entities with pending signals", count)
                count = await self.engine.resume()
            except (StorageUnavailable, AzureError) as exc:
                log.warning("resuming durable work: %s; retrying in %.1fs", exc, delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            if count:
                log.info("resumed %d orchestration instances", count)
            return

    def _lease_changed(self, held: bool) -> None:
        """The lease was lost or taken back: another host may have written the hub meanwhile, so
        what memory holds of it is dropped, and once the hub is ours again its unfinished work is
        picked up from storage as at start-up."""
        for store in (self.store, self.instances):
            for cache in store.cache_hooks if store is not None else []:
                cache.fail()
        if held and (self._resume_task is None or self._resume_task.done()):
            self._resume_task = asyncio.get_running_loop().create_task(self._resume())

    async def wait_idle(self) -> None:
        """Wait until start-up resumption is done and no entity has work in flight (tests)."""
        if self._resume_task is not None:
            await asyncio.shield(self._resume_task)
        if self.dispatcher is not None:
            await self.dispatcher.idle()
        if self.engine is not None:
            await self.engine.idle()

    async def _accept_inline(self, name: str, key: str, operation: str, operation_input: Any) -> bool:
        """The app's turns in this process hand their operations here (`durableagent._commits`): the
        same input text as the entity API would store for the client's signal, run at once when
        the entity is idle (`EntityDispatcher.accept_inline`)."""
        if self.dispatcher is None:
            return False
        # As the SDK's client posts it (the JSON text of its value, encoded once more) and the API stores it.
        text = json.dumps(json.dumps(operation_input)) if operation_input else None
        if text is not None and len(text.encode("utf-8")) > MAX_SIGNAL_BODY:
            return False  # the API's own answer (413) applies
        try:
            return await self.dispatcher.accept_inline(name, key, operation, text)
        except StorageUnavailable as exc:
            raise BackendUnavailable(str(exc)) from exc

    async def stop(self) -> None:
        """Stop serving; unapplied signals stay in storage for the next start."""
        self._running = False
        if self._commits_served is not None:
            COMMITS.stop(self._commits_served)
            self._commits_served = None
        if self._resume_task is not None:
            self._resume_task.cancel()
            await asyncio.gather(self._resume_task, return_exceptions=True)
        if isinstance(self.clock, VirtualClock):
            await self.clock.stop()
            use_time_source(None)
        if self.mcp is not None:
            await self.mcp.stop()
        for trigger in self.triggers:
            await trigger.stop()
        if self.engine is not None:
            await self.engine.close()
        if self.dispatcher is not None:
            await self.dispatcher.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._grpc is not None:
            await self._grpc.stop(grace=1.0)
            self._grpc = None
        if self.app_process is not None:
            await self.app_process.stop()
        if self.store is not None:
            await self.store.close()
        if self.instances is not None:
            await self.instances.close()
        if self.outputs is not None:
            await self.outputs.close()
        if self._hub_clock is not None:
            await self._hub_clock.close()
            self._hub_clock = None
        if self.lease is not None:
            await self.lease.release()
            self.lease = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        await _reset_sdk_http_session()
        # An in-process host (tests) must not leave the app's settings in the caller's environment.
        for name, value in self._applied_settings.items():
            if os.environ.get(name) == value:
                del os.environ[name]

    async def __aenter__(self) -> LocalHost:
        return await self.start()

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    async def _status(self, request: web.Request) -> web.StreamResponse:
        """Readiness probe, same path and shape as the Functions host."""
        return json_response(
            {
                "state": "Running" if self._running else "Initialized",  # as the Functions host
                "id": self.instance_id,
                "version": HOST_VERSION,
                "processUptime": int((time.monotonic() - self._started) * 1000),
                "taskHub": self.hub_name,
                "taskHubLease": "held" if self.lease is not None and self.lease.held else "not held",
            }
        )

    def _banner(self, functions: FunctionServer) -> None:
        """List what is served, like `func start` does."""
        assert self.index is not None
        lines = [f"Local Functions host ({HOST_VERSION}) for {self.app_dir}", "", "Functions:", ""]
        lines.extend(f"        {line}" for line in functions.banner(self.url))
        for entity in self.index.entities.values():
            lines.append(f"        {entity.function_name}: entityTrigger ({entity.display_name})")
        for orchestrator in {id(o): o for o in self.index.orchestrators.values()}.values():
            lines.append(f"        {orchestrator.function_name}: orchestrationTrigger ({orchestrator.name})")
        for activity in {id(a): a for a in self.index.activities.values()}.values():
            lines.append(f"        {activity.function_name}: activityTrigger ({activity.name})")
        for trigger in self.triggers:
            lines.extend(f"        {line}" for line in trigger.banner())
        lines.append("")
        tables = [s.table_name for s in (self.store, self.instances) if s is not None]
        lines.append(f"Task hub: {self.hub_name}  storage tables: {', '.join(tables)}")
        if self.config is not None:
            lines.append(
                f"Concurrency: {self.config.max_activities} activities, "
                f"{self.config.max_orchestrators} orchestrator episodes"
            )
            timeout = self.config.function_timeout
            lines.append(f"Function timeout: {'none' if timeout is None else format_timespan(timeout)}")
        lines.append(f"Durable API: {self.url}{BASE_PATH}/")
        lines.extend(self.mcp.banner(self.url) if self.mcp is not None else [])
        if self.enforce_keys:
            lines.append(f"Function key (enforced): {self.function_key}")
        for line in lines:
            log.info("%s", line)
        for name, outputs in self.index.outputs():
            for dropped in outputs.dropped:
                log.warning(
                    "function %s: output binding %s is not supported; values set are dropped", name, dropped
                )
        served = set(KINDS)
        for trigger_type, functions in self.index.triggered.items():
            for function in functions if trigger_type not in served else []:
                log.warning(
                    "function %s: trigger %s is not supported by the local host; it will not run",
                    function.name,
                    trigger_type,
                )


class _BindFirstSite(web.TCPSite):
    """A TCP site that binds its port (`bind`) before it serves (`start`), so a host can check the
    port is its own before it takes the hub's lease, and take the lease before anything is answered."""

    __slots__ = ()

    async def bind(self) -> int:
        """Bind and listen without accepting; returns the port (the one chosen for port 0)."""
        assert self._runner.server is not None
        self._server = await asyncio.get_running_loop().create_server(
            self._runner.server, self._host, self._port, backlog=self._backlog, start_serving=False
        )
        self._runner._reg_site(self)  # the runner's cleanup closes it, started or not
        self._bound_port = self._server.sockets[0].getsockname()[1] if self._server.sockets else self._port
        return self._bound_port

    async def start(self) -> None:
        """Serve on what `bind` bound."""
        assert self._server is not None
        await self._server.start_serving()


def build_parser() -> argparse.ArgumentParser:
    """`host [APP_DIR] --port 7071 [--host 127.0.0.1] [--enforce-keys] [--storage CONNSTR]`."""
    parser = argparse.ArgumentParser(
        prog="host", description="Run a Python v2 Functions app locally (HTTP triggers + durable entities)."
    )
    parser.add_argument("app_dir", nargs="?", default=".", help="directory containing function_app.py")
    parser.add_argument(
        "--port", type=partial(port_argument, allow_zero=True), default=7071, help="port (0: any free port)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind")
    parser.add_argument(
        "--enforce-keys", action="store_true", help=f"require a key (env {KEY_ENV} or generated)"
    )
    parser.add_argument(
        "--storage", default=None, help="storage connection string (default AzureWebJobsStorage)"
    )
    parser.add_argument(
        "--virtual-time",
        choices=TIME_MODES,
        default=os.environ.get(VIRTUAL_TIME_ENV) or "real",
        help=f"the clock of timers, retries, schedules and TTLs: real (default), auto (jumps to the next "
        f"timer whenever the host is idle) or manual (moved by POST /admin/clock); env {VIRTUAL_TIME_ENV}",
    )
    parser.add_argument(
        "--python",
        default=None,
        metavar="PATH",
        help="run the app in this Python (Durable Functions 2.x apps, which need 3.13); "
        "default: the app folder's .venv when it holds azure-functions-durable 2.x",
    )
    parser.add_argument("--verbose", "-v", action="store_true")
    return parser


STOP_GRACE = 10.0  # seconds a SIGTERM/SIGINT stop may take before the process just exits
STOP_GRACE_ENV = "DURABLEAGENT_STOP_GRACE"
"""Another grace, in seconds: the tests of the grace itself wait two seconds for it, not ten."""


def stop_grace() -> float:
    """`DURABLEAGENT_STOP_GRACE` seconds when set, else `STOP_GRACE`; ValueError naming a bad value."""
    text = os.environ.get(STOP_GRACE_ENV)
    if text is None:
        return STOP_GRACE
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 0):
        raise ValueError(f"{STOP_GRACE_ENV} must be a number of seconds over 0, not {text!r}")
    return value


async def _serve(host: LocalHost, grace: float = STOP_GRACE) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # asyncio.to_thread / run_in_executor(None) in app code: daemon threads too, so that asyncio.run's
    # default-executor shutdown and the interpreter's exit do not wait for a hung one.
    loop.set_default_executor(DaemonThreadPool(min(32, (os.cpu_count() or 1) + 4), "asyncio"))
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - non-Unix
            pass
    await host.start()
    _tune_gc()
    try:
        await stop.wait()
    finally:
        log.info("shutting down")
        try:
            await asyncio.wait_for(host.stop(), grace)
        except TimeoutError:
            # Storage went away with the stack (the CLI was killed, Azurite with it): its clients
            # would retry for half a minute. Ending here is a crash as far as storage can tell,
            # which every write of the host survives (unapplied work stays stored).
            log.warning("stop did not finish within %g s (storage not answering?); exiting anyway", grace)


def _tune_gc() -> None:
    """Collect less often than CPython's default in the host process.

    An agent turn allocates tens of thousands of short-lived objects (agent-framework copies every
    message of the history on each model call), so with the default thresholds full collections,
    which walk every cached history, came every few turns: at 1000 stored messages one turn in
    about ten took 100-270 ms instead of ~30 ms. What the app loaded at start-up is frozen out of
    collections altogether.
    """
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main(argv: list[str] | None = None) -> int:
    """CLI entry point; returns the process exit code."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="[%(asctime)s] %(levelname)s %(name)s: %(message)s",
        stream=sys.stdout,
    )
    for noisy in ("azure", "aiohttp.access", "urllib3"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:  # the environment's default is not checked by argparse's choices
        clock = clock_for(args.virtual_time)
    except ValueError as exc:
        return _report_error("%s", exc, 2, f"{VIRTUAL_TIME_ENV}: {exc}")
    try:
        grace = stop_grace()
    except ValueError as exc:
        return _report_error("%s", exc, 2)
    host = LocalHost(
        args.app_dir,
        port=args.port,
        host=args.host,
        storage=args.storage,
        enforce_keys=args.enforce_keys,
        clock=clock,
        python=args.python,
    )
    try:
        asyncio.run(_serve(host, grace))
    except AppLoadError as exc:  # also SettingsError: a broken local.settings.json, host.json, --storage
        return _report_error("%s", exc, 2)
    except AzureError as exc:
        return _report_error("storage: %s", exc, 1, (str(exc).splitlines() or [""])[0])
    except OSError as exc:
        return _report_error("cannot start host: %s", exc, 1)
    except ValueError as exc:  # e.g. the storage SDKs rejecting a connection string without an account
        return _report_error("cannot start host: %s", exc, 2)
    except KeyboardInterrupt:
        return 130
    return 0


def _report_error(fmt: str, exc: BaseException, code: int, text: str | None = None) -> int:
    """Log `exc` (or `text`) as one line, the traceback only with --verbose; return the exit code."""
    line = " ".join((str(exc) if text is None else text).split()) or type(exc).__name__
    log.error(fmt, line)
    log.debug("details of the error above", exc_info=exc)
    return code
