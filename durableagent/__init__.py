"""Host Microsoft Agent Framework agents in Azure Durable Functions entities."""

from .app import AgentFunctionApp, RegisteredAgent
from .callbacks import AgentCallbackContext, AgentResponseCallbackProtocol
from .http import Polling
from .orchestration import AgentRunError, OrchestrationAgent
from .requests import RequestError, RunRequest
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
    "RegisteredAgent",
    "RequestError",
    "RunRequest",
    "entity_name_for",
]
