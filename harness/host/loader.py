"""Load an unmodified `function_app.py` and index its functions once.

The SDK's `get_functions()` may only be called once per process, so the result is kept in an
`AppIndex` that the rest of the host reads.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import importlib.util
import inspect
import logging
import sys
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import azure.functions as func

from .errors import AppLoadError
from .triggers.asgi import takes_asgi_request
from .triggers.routes import RouteTemplate, RouteTemplateError, sort_key

log = logging.getLogger(__name__)

ALL_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE")


class Binding(NamedTuple):
    """A binding the host does not serve (passed None, or given an `Out` it drops)."""

    name: str
    type: str

    def __str__(self) -> str:
        return f"{self.name} ({self.type})"


@dataclass(frozen=True)
class QueueOutput:
    """A `@app.queue_output` binding: the value of `param` (a `func.Out`, or `$return`) is queued."""

    param: str
    queue_name: str
    connection: str


@dataclass
class Outputs:
    """A function's output bindings: queue outputs are written, the others dropped."""

    queues: list[QueueOutput] = field(default_factory=list)
    dropped: list[Binding] = field(default_factory=list)


@dataclass
class HttpFunction:
    """One HTTP-triggered function and what is needed to call it."""

    name: str
    route: str
    template: RouteTemplate
    methods: tuple[str, ...]
    auth_level: str
    trigger_param: str
    client_params: list[str]
    other_inputs: list[Binding]
    wants_context: bool
    fn: Callable[..., Any]
    is_async: bool
    outputs: Outputs = field(default_factory=Outputs)
    asgi: bool = False
    """Takes the HTTP streams extension's (FastAPI) `Request` (served by `triggers/asgi.py`)."""


@dataclass
class EntityFunction:
    """One entity-triggered function; `name` is the lower-cased entity name."""

    name: str
    display_name: str
    function_name: str
    fn: Callable[..., Any]


@dataclass
class OrchestratorFunction:
    """One orchestration-triggered function: `fn` is the SDK's handler (JSON in, JSON out)."""

    name: str
    function_name: str
    fn: Callable[..., Any]


@dataclass
class ActivityFunction:
    """One activity-triggered function: the user's own function, called with its input by keyword."""

    name: str
    function_name: str
    param: str
    fn: Callable[..., Any]
    is_async: bool
    outputs: Outputs = field(default_factory=Outputs)


@dataclass
class TriggeredFunction:
    """A function whose trigger kind is served by a `triggers.base.Trigger` (timers, queues, ...):
    what every kind needs to call it, and the SDK's trigger binding, from which the kind reads its own
    settings (a schedule, a queue name)."""

    name: str
    trigger: Any
    trigger_param: str
    client_params: list[str]
    fn: Callable[..., Any]
    is_async: bool
    outputs: Outputs = field(default_factory=Outputs)


@dataclass
class AppIndex:
    """Everything the host learned from the app."""

    module_name: str
    http: list[HttpFunction] = field(default_factory=list)
    entities: dict[str, EntityFunction] = field(default_factory=dict)
    # Keyed by lower-cased name (function names are case-insensitive); a function is listed under its
    # Python name and under the binding's `orchestration=` / `activity=` value when that differs.
    orchestrators: dict[str, OrchestratorFunction] = field(default_factory=dict)
    activities: dict[str, ActivityFunction] = field(default_factory=dict)
    # Every other trigger, by its binding type (`timerTrigger`, `queueTrigger`, ...): served when a
    # trigger kind is registered for the type (`triggers/registry.py`), else reported at start-up.
    triggered: dict[str, list[TriggeredFunction]] = field(default_factory=dict)

    def outputs(self) -> list[tuple[str, Outputs]]:
        """(function name, output bindings) of every function that may have outputs."""
        functions: list[HttpFunction | ActivityFunction | TriggeredFunction] = [
            *self.http,
            *(f for kind in self.triggered.values() for f in kind),
            *{id(a): a for a in self.activities.values()}.values(),
        ]
        return [(getattr(f, "function_name", f.name), f.outputs) for f in functions]


def _enum_value(value: Any) -> str:
    return str(getattr(value, "value", value))


def find_function_register(module: Any) -> func.FunctionRegister:
    """The module global that is a FunctionRegister (`func.FunctionApp`, `df.DFApp`, ...)."""
    found = [v for v in vars(module).values() if isinstance(v, func.FunctionRegister)]
    if not found:
        raise AppLoadError(f"{module.__file__}: no FunctionRegister (e.g. `app = func.FunctionApp()`) found")
    if len(found) > 1 and any(f is not found[0] for f in found):
        raise AppLoadError(f"{module.__file__}: more than one FunctionRegister defined")
    return found[0]


def import_app(app_dir: Path, module_name: str = "function_app") -> Any:
    """Import `function_app.py` from app_dir with app_dir on sys.path (so its own imports work)."""
    app_dir = app_dir.resolve()
    script = app_dir / f"{module_name}.py"
    if not script.is_file():
        raise AppLoadError(f"{script} not found")
    if str(app_dir) not in sys.path:
        sys.path.insert(0, str(app_dir))
    existing = sys.modules.get(module_name)
    if existing is not None and Path(getattr(existing, "__file__", "") or "").resolve() == script:
        return existing
    spec = importlib.util.spec_from_file_location(module_name, script)
    if spec is None or spec.loader is None:
        raise AppLoadError(f"cannot import {script}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        sys.modules.pop(module_name, None)
        raise AppLoadError(f"importing {script} failed: {type(exc).__name__}: {exc}") from exc
    return module


def index_functions(functions: list[Any], module_name: str = "function_app") -> AppIndex:
    """Turn the SDK's Function objects into what the host serves."""
    index = AppIndex(module_name=module_name)
    for function in functions:
        name = function.get_function_name()
        trigger = function.get_trigger()
        trigger_type = getattr(trigger, "type", None) or "unknown"
        fn = function.get_user_function()
        if trigger_type == "httpTrigger":
            index.http.append(_http_function(name, trigger, function.get_bindings(), fn))
        elif trigger_type == "entityTrigger":
            display = getattr(trigger, "entity_name", None) or name
            index.entities[display.lower()] = EntityFunction(
                name=display.lower(), display_name=display, function_name=name, fn=fn
            )
        elif trigger_type == "orchestrationTrigger":
            registered = OrchestratorFunction(getattr(trigger, "orchestration", None) or name, name, fn)
            for alias in {name, registered.name}:
                index.orchestrators[alias.lower()] = registered
        elif trigger_type == "activityTrigger":
            activity = ActivityFunction(
                getattr(trigger, "activity", None) or name,
                name,
                trigger.name,
                fn,
                inspect.iscoroutinefunction(fn),
                _outputs(function.get_bindings()),
            )
            for alias in {name, activity.name}:
                index.activities[alias.lower()] = activity
        else:
            clients, _ = _inputs(function.get_bindings())
            index.triggered.setdefault(trigger_type, []).append(
                TriggeredFunction(
                    name,
                    trigger,
                    str(getattr(trigger, "name", "")),
                    clients,
                    fn,
                    inspect.iscoroutinefunction(fn),
                    _outputs(function.get_bindings()),
                )
            )
    index.http.sort(key=lambda f: sort_key(f.template))
    return index


def _http_function(name: str, trigger: Any, bindings: list[Any], fn: Callable[..., Any]) -> HttpFunction:
    route = trigger.route if trigger.route is not None else name
    try:
        template = RouteTemplate.parse(route)
    except RouteTemplateError as exc:
        raise AppLoadError(f"function {name}: {exc}") from exc
    methods = tuple(_enum_value(m).upper() for m in trigger.methods) if trigger.methods else ALL_METHODS
    clients, others = _inputs(bindings)
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    return HttpFunction(
        name=name,
        route=route,
        template=template,
        methods=methods,
        auth_level=_enum_value(trigger.auth_level or "function").lower(),
        trigger_param=trigger.name,
        client_params=clients,
        other_inputs=others,
        wants_context="context" in params,
        fn=fn,
        is_async=inspect.iscoroutinefunction(fn),
        outputs=_outputs(bindings),
        asgi=takes_asgi_request(fn, trigger.name),
    )


def _inputs(bindings: list[Any]) -> tuple[list[str], list[Binding]]:
    """(durable client parameters, other input bindings) of a function, beside its trigger."""
    clients: list[str] = []
    others: list[Binding] = []
    for binding in bindings:
        if int(getattr(binding, "direction", 0) or 0) != 0:  # outputs such as `$return`
            continue
        if binding.type.endswith("Trigger"):
            continue
        if binding.type == "durableClient":
            clients.append(binding.name)
        else:
            others.append(Binding(binding.name, binding.type))
    return clients, others


def _outputs(bindings: list[Any]) -> Outputs:
    """The output bindings the host writes (queues) and those it drops; `http` outputs are the reply."""
    outputs = Outputs()
    for binding in bindings:
        if int(getattr(binding, "direction", 0) or 0) == 0 or binding.type == "http":
            continue
        if binding.type == "queue":
            connection = str(getattr(binding, "connection", None) or "AzureWebJobsStorage")
            outputs.queues.append(QueueOutput(binding.name, str(binding.queue_name), connection))
        else:
            outputs.dropped.append(Binding(binding.name, binding.type))
    return outputs


async def call_function(
    fn: Callable[..., Any], kwargs: dict[str, Any], is_async: bool, executor: Executor
) -> Any:
    """Call a user function as the Functions worker does: coroutines awaited, sync ones in a thread."""
    if is_async:
        return await fn(**kwargs)
    result = await asyncio.get_running_loop().run_in_executor(executor, functools.partial(fn, **kwargs))
    if inspect.isawaitable(result):
        result = await result
    return result


_INDEXED: dict[Path, AppIndex] = {}


def load_app(app_dir: Path) -> AppIndex:
    """Import the app and index it; `get_functions()` runs once per app per process (the SDK demands it)."""
    key = app_dir.resolve()
    if key in _INDEXED:
        return _INDEXED[key]
    module = import_app(app_dir)
    register = find_function_register(module)
    try:
        functions = register.get_functions()
    except Exception as exc:
        raise AppLoadError(f"indexing functions failed: {type(exc).__name__}: {exc}") from exc
    index = index_functions(functions, module.__name__)
    _INDEXED[key] = index
    return index
