"""Host Microsoft Agent Framework agents in Azure Durable Functions entities.

Exported are the names a public API takes or returns: the app and its `Polling` setting, response
callbacks and their context, session ids and the stored state. Route internals (`_routes`,
`_run_request`) are private: their module names would otherwise shadow `http` and `requests`.
"""

from ._routes import Polling
from .app import AgentFunctionApp
from .callbacks import AgentCallbackContext, AgentResponseCallbackProtocol
from .orchestration import AgentRunError, OrchestrationAgent
from .session import AgentSessionId, entity_name_for
from .state import SCHEMA_VERSION, AgentState

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
    "entity_name_for",
]
