"""Host Microsoft Agent Framework agents in Azure Durable Functions entities.

Exported are the names a public API takes or returns: the app and its `Polling` setting, response
callbacks and their context, session ids, the stored state and the reply stream
stores. Route internals (`_routes`,
`_run_request`) are private: their module names would otherwise shadow `http` and `requests`.
"""

from .app import AgentFunctionApp
from .callbacks import AgentCallbackContext, AgentResponseCallbackProtocol
from .orchestration import AgentRunError, OrchestrationAgent
from .redis_streams import RedisStreamStore
from .session import AgentSessionId, entity_name_for
from .state import SCHEMA_VERSION, AgentState
from .streams import StreamStore, TableStreamStore
from .turns import Polling
from .workflows import WorkflowHitlContext

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
