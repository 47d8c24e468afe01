"""Host Microsoft Agent Framework agents in Azure Durable Functions entities.

Exported are the names a public API takes or returns: the app and its `Polling` setting, response
callbacks and their context, session ids, the stored state and the reply stream
stores. Route internals (`_routes`,
`_run_request`) are private: their module names would otherwise shadow `http` and `requests`.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import AgentFunctionApp
    from .callbacks import AgentCallbackContext, AgentResponseCallbackProtocol
    from .orchestration import AgentRunError, OrchestrationAgent
    from .redis_streams import RedisStreamStore
    from .session import AgentSessionId, entity_name_for
    from .state import SCHEMA_VERSION, AgentState
    from .streams import StreamStore, TableStreamStore
    from .turns import Polling
    from .workflows import WorkflowHitlContext

_WHERE = {
    "AgentFunctionApp": "app",
    "AgentCallbackContext": "callbacks",
    "AgentResponseCallbackProtocol": "callbacks",
    "AgentRunError": "orchestration",
    "OrchestrationAgent": "orchestration",
    "RedisStreamStore": "redis_streams",
    "AgentSessionId": "session",
    "entity_name_for": "session",
    "SCHEMA_VERSION": "state",
    "AgentState": "state",
    "StreamStore": "streams",
    "TableStreamStore": "streams",
    "Polling": "turns",
    "WorkflowHitlContext": "workflows",
}


def __getattr__(name: str) -> Any:
    """Load an export's module on first use: a tool that needs one module (the CLI reading a stored
    state) then does not pay for importing the whole app stack (Durable SDK, Functions, MCP)."""
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "SCHEMA_VERSION",
    "AgentCallbackContext",
    "AgentFunctionApp",
    "AgentRunError",
    "AgentResponseCallbackProtocol",
    "AgentSessionId",
    "AgentState",
    "OrchestrationAgent",
    "Polling",
    "RedisStreamStore",
    "StreamStore",
    "TableStreamStore",
    "WorkflowHitlContext",
    "entity_name_for",
]
