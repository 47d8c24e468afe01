"""The seam every trigger kind beside HTTP goes through: found in the function index by its binding
type, created from its functions (refusing a configuration it cannot run with one `AppLoadError`),
started once the host serves, listed in the start-up banner, stopped at shutdown.

A new kind is one module with a `Trigger` subclass and one line in `registry.py`. HTTP triggers stay
apart (`http.py`): they are not started but answer requests, routed by `server.py`.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, ClassVar

from ..clock import Clock
from ..loader import TriggeredFunction
from ..scheduler import Scheduler
from ..settings import HostConfig
from ..workers import within
from .outputs import OutputWriter

log = logging.getLogger(__name__)

MCP_PATH = "/runtime/webhooks/mcp"
"""Where the app's MCP trigger functions are served (`mcp.McpEndpoint`, loaded only for them)."""


@dataclass(frozen=True)
class TriggerServices:
    """What the host lends a trigger kind to run its functions."""

    executor: Executor
    client_binding: Callable[[], str]  # the durable client binding for `durableClient` parameters
    outputs: OutputWriter
    scheduler: Scheduler
    storage: str  # the host's own connection string, which `AzureWebJobsStorage` means
    config: HostConfig
    clock: Clock  # what time it is for schedules (the scheduler's own clock)


class Trigger(ABC):
    """One trigger kind and the functions it runs."""

    binding_type: ClassVar[str]
    """The trigger binding's `type` in the function index (`timerTrigger`, `queueTrigger`, ...)."""

    def __init__(self, services: TriggerServices) -> None:
        self.services = services

    @classmethod
    @abstractmethod
    def create(cls, functions: list[TriggeredFunction], services: TriggerServices) -> Trigger:
        """The kind for these functions; `AppLoadError` naming the function for one it cannot run."""

    async def prepare(self) -> None:
        """Make what the kind's sources need before the host says it is ready (a queue a client
        may send to as soon as the host answers); nothing by default."""
        return None

    @abstractmethod
    def start(self) -> None:
        """Begin firing (called once the host serves and holds the hub, after `prepare`)."""

    @abstractmethod
    async def stop(self) -> None:
        """Stop firing (work under way is delivered again later, where the kind promises that)."""

    @abstractmethod
    def banner(self) -> list[str]:
        """One line per function for the start-up banner (`NAME: kindTrigger (details)`)."""

    async def invoke(self, function: TriggeredFunction, value: Any) -> Any:
        """Call `function` with its trigger `value`, its durable clients and its output bindings,
        within functionTimeout (raises what the function raised, or `FunctionTimeoutError`)."""
        services = self.services
        kwargs: dict[str, Any] = {function.trigger_param: value}
        for param in function.client_params:
            kwargs[param] = services.client_binding()
        outputs = services.outputs
        call = outputs.call(function.fn, kwargs, function.is_async, services.executor, function.outputs)
        return await within(services.config.function_timeout, call, function.name)
