"""An app's orchestrators by name, as the replay check looks them up: from its `FunctionApp` object
(`df.DFApp`, `AgentFunctionApp`), under the Python function name and the binding's `orchestration=`
name (Functions names are case-insensitive), as the Functions host and the local host register them.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable
from typing import Any

Orchestrators = Callable[[str], Any]
"""The SDK handler (`get_user_function()` of an orchestrationTrigger) of an orchestrator, by name;
None when the app has no such orchestrator."""

_INDEXED: weakref.WeakKeyDictionary[Any, dict[str, Any]] = weakref.WeakKeyDictionary()


def by_name(handlers: dict[str, Any]) -> Orchestrators:
    """An `Orchestrators` lookup over a mapping of names to SDK handlers (case-insensitive)."""
    lowered = {name.lower(): handler for name, handler in handlers.items()}
    return lambda name: lowered.get(name.lower())


def orchestrators_of(app: Any) -> Orchestrators:
    """The orchestrators of a `FunctionApp` object.

    `get_functions()` refuses a second call (it records the names it saw in `functions_bindings`),
    and the Functions host (or the local host, in the same test process) calls it too: so the names
    it records are put back as they were, and this app's index is kept for the next call.
    """
    handlers = _INDEXED.get(app)
    if handlers is None:
        saved = getattr(app, "functions_bindings", None)
        app.functions_bindings = {}
        try:
            functions = app.get_functions()
        finally:
            app.functions_bindings = saved
        handlers = {}
        for function in functions:
            trigger = function.get_trigger()
            if getattr(trigger, "type", None) != "orchestrationTrigger":
                continue
            for name in {function.get_function_name(), getattr(trigger, "orchestration", None)}:
                if name:
                    handlers[name] = function.get_user_function()
        _INDEXED[app] = handlers
    return by_name(handlers)
