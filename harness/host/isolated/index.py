"""The host's `AppIndex` of an app that runs in its own interpreter.

The child describes each function as JSON (`bridge.py`); here each becomes what `loader.index_functions`
reads from the SDK's own Function objects (so routes, methods, auth levels, entity and orchestrator
names are indexed by the one code that indexes in-process apps), with a proxy in place of the user
function. A proxy turns the host's arguments (a `func.HttpRequest`, a durable client binding's JSON)
into the bridge's and its answer back into a `func.HttpResponse` or a value, so the HTTP front and
the trigger kinds call it like any async function.

Orchestrators, activities and entities are not called through proxies: the engine hands their work to
`work.AppWorkItems`, which speaks the SDK's own protocol with the child.
"""

from __future__ import annotations

import base64
import inspect
import json
import logging
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import azure.functions as func
from azure.functions.timer import TimerRequest

from ..loader import AppIndex, index_functions
from .process import AppFunctionError, AppProcess

log = logging.getLogger(__name__)

DURABLE_TRIGGERS = {"orchestrationTrigger", "activityTrigger", "entityTrigger"}


class _Binding(SimpleNamespace):
    """A described binding: what the SDK's object would have as None when the description left it
    out (`get_dict_repr()` omits unset attributes, e.g. `methods` of a route that takes them all)."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):
            raise AttributeError(name)
        return None


class _Function:
    """A described function in the shape `index_functions` reads (`get_function_name()`, ...)."""

    def __init__(self, described: dict[str, Any], fn: Callable[..., Any]) -> None:
        self._described = described
        self._fn = fn

    def get_function_name(self) -> str:
        return str(self._described["name"])

    def get_trigger(self) -> Any:
        return _Binding(**self._described["trigger"])

    def get_bindings(self) -> list[Any]:
        bindings = []
        for binding in self._described["bindings"]:
            if binding.get("direction") != 0 and binding.get("type") != "http":
                # Output bindings are not passed to the app's process yet: listed as dropped (the
                # start warns), not as outputs the host would write.
                binding = {**binding, "type": f"{binding.get('type')}, in the app's own interpreter"}
            bindings.append(_Binding(**binding))
        return bindings

    def get_user_function(self) -> Callable[..., Any]:
        return self._fn


def remote_index(process: AppProcess) -> AppIndex:
    """The app's index, every HTTP or other trigger's function a proxy into `process`."""
    functions = []
    for described in process.description.get("functions", []):
        trigger_type = described["trigger"]["type"]
        if trigger_type in DURABLE_TRIGGERS:
            fn = _not_called(described["name"])
        else:
            fn = _proxy(process, described)
        functions.append(_Function(described, fn))
    return index_functions(functions)


def _not_called(name: str) -> Callable[..., Any]:
    def fn(**_: Any) -> Any:  # pragma: no cover - the engine hands durable work to AppWorkItems
        raise RuntimeError(f"{name} runs in the app's own interpreter")

    return fn


def _proxy(process: AppProcess, described: dict[str, Any]) -> Callable[..., Any]:
    """An async function with the user function's parameters that calls it in the child."""
    name = described["name"]
    trigger = described["trigger"]
    inputs = {b["name"] for b in described["bindings"] if b.get("direction") == 0}

    async def call(**kwargs: Any) -> Any:
        args: dict[str, Any] = {}
        for param, value in kwargs.items():
            if param not in inputs:
                continue  # `context` (the child makes its own) and output bindings (not served)
            if isinstance(value, func.HttpRequest):
                args[param] = {"http": _request(value)}
            elif isinstance(value, TimerRequest):
                args[param] = {"datum": {"type": "json", "value": json.dumps({"IsPastDue": value.past_due})}}
            elif isinstance(value, func.QueueMessage):
                args[param] = _queue_message(value)
            elif isinstance(value, str):
                args[param] = {"datum": {"type": "string", "value": value}}
            elif value is None:
                continue
            else:
                raise TypeError(
                    f"function {name}: a {trigger['type']} argument of type {type(value).__name__} "
                    "cannot be passed to an app in its own interpreter yet"
                )
        try:
            return _result(await process.call(name, args))
        except AppFunctionError as exc:
            raise exc.as_raised() from None

    params = [inspect.Parameter(p, inspect.Parameter.KEYWORD_ONLY) for p in described["params"]]
    call.__signature__ = inspect.Signature(params)  # type: ignore[attr-defined]
    call.__name__ = name
    return call


def _request(request: func.HttpRequest) -> dict[str, Any]:
    return {
        "method": request.method,
        "url": request.url,
        "headers": dict(request.headers),
        "params": dict(request.params),
        "route_params": dict(request.route_params),
        "body": base64.b64encode(request.get_body() or b"").decode("ascii"),
    }


def _queue_message(message: func.QueueMessage) -> dict[str, Any]:
    """A queue message as the worker hands it over: the body, and its properties as trigger metadata
    (what the queue trigger's converter rebuilds the `func.QueueMessage` from)."""
    metadata: dict[str, Any] = {
        "Id": {"type": "string", "value": message.id},
        "DequeueCount": {"type": "int", "value": message.dequeue_count},
        "PopReceipt": {"type": "string", "value": message.pop_receipt},
    }
    for key, value in (
        ("ExpirationTime", message.expiration_time),
        ("InsertionTime", message.insertion_time),
        ("NextVisibleTime", message.time_next_visible),
    ):
        if value is not None:
            metadata[key] = {"type": "string", "value": value.isoformat()}
    body = message.get_body().decode("utf-8", errors="replace")
    return {"datum": {"type": "string", "value": body}, "metadata": metadata}


def _result(result: dict[str, Any] | None) -> Any:
    """The child's answer as the value the HTTP front or a trigger kind expects."""
    if not result:
        return None
    if "http" in result:
        answer = result["http"]
        headers = dict(answer.get("headers") or {})
        return func.HttpResponse(
            body=base64.b64decode(answer.get("body") or ""),
            status_code=int(answer.get("status") or 200),
            headers=headers,
            mimetype=None if _has_content_type(headers) else answer.get("mimetype"),
            charset=answer.get("charset") or "utf-8",
        )
    if "bytes" in result:
        return base64.b64decode(result["bytes"])
    if "datum" in result:
        return result["datum"].get("value")
    return result.get("json")


def _has_content_type(headers: dict[str, str]) -> bool:
    return any(k.lower() == "content-type" for k in headers)
